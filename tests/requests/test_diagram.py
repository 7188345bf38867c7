"""The request diagram (`GET /v1/requests/{id}/diagram.svg`), its signed links
(`POST /v1/requests/{id}/diagram-link`) and what the picture shows, on PostgreSQL over HTTP.

UI.md: a signed, short-lived URL serves that one picture without a token; the SVG names who
approved each stage, who is still pending and when each stage is due, is self-contained and is
sent with `Content-Security-Policy: default-src 'none'` and `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from countersign.kit import clock
from tests.fixtures.client import TokenFactory
from tests.fixtures.flows import Flow, problem_code, stage, user_rule

SVG = "{http://www.w3.org/2000/svg}"
# Everything a diagram may contain: shapes and text, nothing that loads or runs anything.
ALLOWED_ELEMENTS = {
    f"{SVG}{name}"
    for name in (
        "svg",
        "title",
        "desc",
        "defs",
        "marker",
        "path",
        "rect",
        "text",
        "g",
        "line",
    )
}
HOSTILE = "<script>alert('x')</script> & \"friends\""


@pytest.fixture
def flow(
    client: httpx.AsyncClient, admin_headers: dict[str, str], token: TokenFactory
) -> Flow:
    return Flow(client, admin_headers, token)


@pytest.fixture(autouse=True)
def service_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This test's own service clock: moving it does not move anyone else's."""
    monkeypatch.setenv("COUNTERSIGN_CLOCK_FILE", str(tmp_path / "clock"))


def parse(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["content-security-policy"] == "default-src 'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    root = ET.fromstring(response.text)
    assert root.tag == f"{SVG}svg"
    return root


def stages_of(root: ET.Element) -> dict[int, ET.Element]:
    return {
        int(g.attrib["data-stage-order"]): g
        for g in root.iter(f"{SVG}g")
        if "data-stage-order" in g.attrib
    }


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{SVG}text")]


def box(element: ET.Element) -> ET.Element:
    rect = element.find(f"{SVG}rect")
    assert rect is not None
    return rect


async def link(
    flow: Flow, request_id: str, headers: dict[str, str] | None = None
) -> dict[str, str]:
    response = await flow.client.post(
        f"/v1/requests/{request_id}/diagram-link",
        headers=flow.caller if headers is None else headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def open_link(flow: Flow, url: str) -> httpx.Response:
    parts = urlsplit(url)
    # No Authorization header: the link is its own proof.
    return await flow.client.get(f"{parts.path}?{parts.query}")


class TestSignedLinks:
    async def test_a_link_serves_the_picture_without_a_token(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        body = await link(flow, request_id)
        response = await open_link(flow, body["url"])

        assert set(body) == {"url", "expires_at"}
        parts = urlsplit(body["url"])
        assert (parts.scheme, parts.netloc) == ("http", "countersign.test")
        assert parts.path == f"/v1/requests/{request_id}/diagram.svg"
        query = parse_qs(parts.query)
        assert set(query) == {"exp", "sig"}
        expires = datetime.fromisoformat(body["expires_at"])
        assert int(query["exp"][0]) == int(expires.timestamp())
        assert expires - clock.now() == pytest.approx(
            timedelta(minutes=15), abs=timedelta(seconds=5)
        )
        root = parse(response)
        assert 1 in stages_of(root)

    async def test_anyone_who_sees_the_request_may_ask_and_nobody_else(
        self, flow: Flow
    ) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        approver = await flow.client.post(
            f"/v1/requests/{request_id}/diagram-link", headers=flow.user("alice")
        )
        viewer = await flow.client.post(
            f"/v1/requests/{request_id}/diagram-link",
            headers=flow.user("vic", roles=["AWE_VIEWER"]),
        )
        stranger = await flow.client.post(
            f"/v1/requests/{request_id}/diagram-link", headers=flow.user("mallory")
        )
        anonymous = await flow.client.post(f"/v1/requests/{request_id}/diagram-link")

        assert (approver.status_code, viewer.status_code) == (200, 200)
        assert (stranger.status_code, problem_code(stranger)) == (
            404,
            "request_not_found",
        )
        assert (anonymous.status_code, problem_code(anonymous)) == (
            401,
            "unauthenticated",
        )

    async def test_an_expired_link_is_401(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        url = (await link(flow, request_id))["url"]

        clock.advance(14 * 60)
        still_good = await open_link(flow, url)
        clock.advance(61)
        expired = await open_link(flow, url)

        assert still_good.status_code == 200
        assert (expired.status_code, problem_code(expired)) == (401, "unauthenticated")
        assert "expired" in expired.json()["detail"]

    async def test_a_forged_link_is_403(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        other_id = (await flow.start(artifact_id="other"))["request_id"]
        url = (await link(flow, request_id))["url"]
        query = parse_qs(urlsplit(url).query)
        exp, sig = query["exp"][0], query["sig"][0]
        flipped = ("A" if sig[0] != "A" else "B") + sig[1:]

        forged = {
            "flipped signature": f"/v1/requests/{request_id}/diagram.svg?exp={exp}&sig={flipped}",
            "later expiry": f"/v1/requests/{request_id}/diagram.svg?exp={int(exp) + 3600}&sig={sig}",
            "another request": f"/v1/requests/{other_id}/diagram.svg?exp={exp}&sig={sig}",
            "truncated": f"/v1/requests/{request_id}/diagram.svg?exp={exp}&sig={sig[:-1]}",
            "non-ascii": f"/v1/requests/{request_id}/diagram.svg?exp={exp}&sig=%C3%A9{sig[1:]}",
        }
        for what, path in forged.items():
            response = await flow.client.get(path)
            assert (response.status_code, problem_code(response)) == (
                403,
                "forbidden",
            ), what

    async def test_half_a_link_or_no_token_at_all_is_401(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]
        query = parse_qs(urlsplit((await link(flow, request_id))["url"]).query)
        path = f"/v1/requests/{request_id}/diagram.svg"

        for params in ({"exp": query["exp"][0]}, {"sig": query["sig"][0]}, {}):
            response = await flow.client.get(path, params=params)
            assert (response.status_code, problem_code(response)) == (
                401,
                "unauthenticated",
            ), params

    async def test_a_malformed_expiry_is_422(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        response = await flow.client.get(
            f"/v1/requests/{request_id}/diagram.svg", params={"exp": "soon", "sig": "x"}
        )

        assert (response.status_code, problem_code(response)) == (
            422,
            "validation_failed",
        )

    async def test_a_link_shows_the_request_as_it_is_now(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"]), stage(2, ["carol"])])
        request_id = (await flow.start())["request_id"]
        url = (await link(flow, request_id))["url"]

        await flow.approve("alice", request_id)
        groups = stages_of(parse(await open_link(flow, url)))

        assert groups[1].attrib["data-status"] == "approved"
        assert groups[2].attrib["data-current"] == "true"

    async def test_the_awe_alias_makes_links_too(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start())["request_id"]

        response = await flow.client.post(
            f"/v1/awe/requests/{request_id}/diagram-link", headers=flow.caller
        )

        assert response.status_code == 200
        parse(await open_link(flow, response.json()["url"]))


class TestPicture:
    async def test_names_who_approved_who_is_pending_and_when_each_stage_is_due(
        self, flow: Flow
    ) -> None:
        await flow.publish(
            [
                stage(
                    1, ["alice", "bob"], mode="all", sla_hours=48, on_breach="notify"
                ),
                stage(2, ["carol"], reminder_hours=12),
            ]
        )
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)
        request = await flow.request(request_id)
        due = datetime.fromisoformat(request["stages"][0]["due_at"]).astimezone(UTC)

        response = await flow.client.get(
            f"/v1/requests/{request_id}/diagram.svg", headers=flow.caller
        )

        groups = stages_of(parse(response))
        first = texts(groups[1])
        assert "Approved: alice" in first
        assert "Pending: bob" in first
        assert f"Due {due:%Y-%m-%d %H:%M} UTC" in first
        assert "SLA 48 h → notify" in first
        assert "Active, current" in first
        assert box(groups[1]).attrib["stroke-width"] == "3"
        second = texts(groups[2])
        assert "Pending" in second  # the status: not started, nobody asked yet
        assert not [t for t in second if t.startswith("Pending:")]
        assert "Remind every 12 h" in second
        assert box(groups[2]).attrib["stroke-width"] == "1"

    async def test_parallel_stages_sit_side_by_side_and_steps_follow_in_order(
        self, flow: Flow
    ) -> None:
        await flow.publish(
            [
                stage(1, ["alice"]),
                stage(2, ["bob"], parallel_group="7"),
                stage(3, ["carol"], parallel_group="7"),
                stage(4, ["dave"]),
            ]
        )
        request_id = (await flow.start())["request_id"]
        await flow.approve("alice", request_id)

        groups = stages_of(
            parse(
                await flow.client.get(
                    f"/v1/requests/{request_id}/diagram.svg", headers=flow.caller
                )
            )
        )

        xy = {
            order: (float(box(g).attrib["x"]), float(box(g).attrib["y"]))
            for order, g in groups.items()
        }
        assert xy[2][1] == xy[3][1]  # one row
        assert xy[2][0] < xy[3][0]  # side by side, in order
        assert xy[1][1] < xy[2][1] < xy[4][1]  # steps top to bottom
        assert [o for o, g in groups.items() if g.attrib.get("data-current")] == [2, 3]
        root_text = "".join(
            ET.fromstring(
                (
                    await flow.client.get(
                        f"/v1/requests/{request_id}/diagram.svg", headers=flow.caller
                    )
                ).text
            ).itertext()
        )
        assert "Parallel group 7: all must complete" in root_text

    async def test_skipped_stages_say_why_and_show_their_condition(
        self, flow: Flow
    ) -> None:
        await flow.publish(
            [
                stage(1, ["alice"], skip_if={"<": [{"var": "amount"}, 100]}),
                stage(2, ["bob"]),
            ]
        )
        request_id = (await flow.start(context={"amount": 5}))["request_id"]

        groups = stages_of(
            parse(
                await flow.client.get(
                    f"/v1/requests/{request_id}/diagram.svg", headers=flow.caller
                )
            )
        )

        assert groups[1].attrib["data-status"] == "skipped"
        first = " ".join(texts(groups[1]))
        assert "Skip if amount < 100" in first
        assert "Skipped" in first

    async def test_hostile_names_are_text_never_markup(
        self, flow: Flow, token: TokenFactory
    ) -> None:
        await flow.publish(
            [
                {
                    **stage(1, []),
                    "name": HOSTILE,
                    "rules": [user_rule("<b>eve</b>&co"), user_rule('x"onload="y')],
                }
            ],
            name="</title><script>alert(1)</script>",
        )
        request_id = (await flow.start(artifact_id="<svg onload=alert(1)>&amp;"))[
            "request_id"
        ]
        await flow.approve("<b>eve</b>&co", request_id)

        response = await flow.client.get(
            f"/v1/requests/{request_id}/diagram.svg", headers=flow.caller
        )

        root = parse(response)
        assert "<script" not in response.text
        assert "<b>" not in response.text
        assert {element.tag for element in root.iter()} <= ALLOWED_ELEMENTS
        for element in root.iter():
            for name, value in element.attrib.items():
                assert not name.startswith("on"), name
                assert "href" not in name
                assert "url(" not in value or value == "url(#arrow)"
        text = "".join(root.itertext())
        assert "<svg onload=alert(1)>&amp;" in text  # the artifact id, as text
        assert "Approved: <b>eve</b>&co" in text
        assert HOSTILE in text  # in the stage's own <title>, unclipped

    async def test_the_picture_is_an_image_with_a_title(self, flow: Flow) -> None:
        await flow.publish([stage(1, ["alice"])])
        request_id = (await flow.start(artifact_id="cr-9"))["request_id"]

        root = parse(
            await flow.client.get(
                f"/v1/requests/{request_id}/diagram.svg", headers=flow.caller
            )
        )

        assert root.attrib["role"] == "img"
        title = root.find(f"{SVG}title")
        assert title is not None
        assert title.text == "test.flow cr-9: in_review"
        desc = root.find(f"{SVG}desc")
        assert desc is not None
        assert "1. Stage 1 (Active, current)" in (desc.text or "")
