"""Webhook signatures: known answers, independent recomputation, and the `standardwebhooks` package.

Expected values are computed here with hmac/hashlib/base64 directly, never with the module under
test, plus fixed vectors: the Standard Webhooks specification's example, and AWE and un-prefixed
vectors computed once with `openssl dgst -sha256 -hmac`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from countersign import __version__
from countersign.webhooks.signing import (
    USER_AGENT,
    awe_signature,
    generate_secret,
    sign_headers,
    standard_key,
    standard_signature,
    verify_awe,
    verify_standard,
)

# The Standard Webhooks specification's example (standard-webhooks.com, "Signature scheme").
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# printf '%s' '1614265330.{"test": 2432232314}' | openssl dgst -sha256 -hmac "$SPEC_SECRET"
SPEC_AWE_SIGNATURE = (
    "sha256=2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964"
)
# printf '%s' 'msg_1.1700000000.{}' | openssl dgst -sha256 -hmac plain-secret -binary | base64
PLAIN_SIGNATURE = "v1,p6NQsMzLWth/nlsTq5oslSVPNvyHmbQZrni4qovDPj4="

NEW_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
OLD_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
BODY = b'{"event_id":"e-1","event_type":"request_approved","status":"approved"}'
EVENT_ID = "0b7c5a52-3f7e-4a53-9c8e-2c1f4f3d9a10"


def expected_standard(key: bytes, event_id: str, ts: int, body: bytes) -> str:
    digest = hmac.new(key, f"{event_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def expected_awe(secret: str, ts: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def headers_for(*secrets: str, ts: int, body: bytes = BODY) -> dict[str, str]:
    return sign_headers(
        event_id=EVENT_ID,
        timestamp=ts,
        body=body,
        secrets=list(secrets),
        user_agent=USER_AGENT,
    )


class TestStandardKey:
    def test_prefixed_secret_is_base64_decoded(self) -> None:
        assert standard_key(NEW_SECRET) == bytes(range(32))

    def test_unprefixed_secret_is_its_utf8_bytes(self) -> None:
        assert standard_key("plain-secret") == b"plain-secret"
        assert standard_key("clé-secrète") == "clé-secrète".encode()

    def test_unpadded_base64_is_accepted(self) -> None:
        assert standard_key(NEW_SECRET.rstrip("=")) == bytes(range(32))

    @pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!", "whsec_a"])
    def test_unusable_secret_is_refused(self, secret: str) -> None:
        with pytest.raises(ValueError, match="secret"):
            standard_key(secret)


class TestStandardSignature:
    def test_specification_example(self) -> None:
        assert (
            standard_signature(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
            == SPEC_SIGNATURE
        )

    def test_unprefixed_secret_known_answer(self) -> None:
        assert standard_signature("plain-secret", "msg_1", 1700000000, b"{}") == (
            PLAIN_SIGNATURE
        )

    @pytest.mark.parametrize(
        ("secret", "key"),
        [
            (NEW_SECRET, bytes(range(32))),
            ("plain-secret", b"plain-secret"),
            ("whsec_c2hvcnQ=", b"short"),
        ],
    )
    def test_matches_independent_computation(self, secret: str, key: bytes) -> None:
        for ts, body in [(0, b""), (1614265330, BODY), (2**31 + 5, "é ✓".encode())]:
            assert standard_signature(secret, EVENT_ID, ts, body) == (
                expected_standard(key, EVENT_ID, ts, body)
            )


class TestAweSignature:
    def test_known_answer(self) -> None:
        assert awe_signature(SPEC_SECRET, SPEC_TS, SPEC_BODY) == SPEC_AWE_SIGNATURE

    @pytest.mark.parametrize("secret", [NEW_SECRET, "plain-secret", "clé"])
    def test_key_is_the_whole_secret_string(self, secret: str) -> None:
        # AWE keys the HMAC with the secret's UTF-8 bytes, `whsec_` prefix included.
        assert awe_signature(secret, 1700000000, BODY) == expected_awe(
            secret, 1700000000, BODY
        )

    def test_empty_secret_is_refused(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            awe_signature("", 1, BODY)


class TestSignHeaders:
    def test_single_secret(self) -> None:
        headers = headers_for(NEW_SECRET, ts=1700000000)
        assert headers == {
            "X-Approval-Event-Id": EVENT_ID,
            "X-Approval-Timestamp": "1700000000",
            "X-Approval-Signature": expected_awe(NEW_SECRET, 1700000000, BODY),
            "webhook-id": EVENT_ID,
            "webhook-timestamp": "1700000000",
            "webhook-signature": expected_standard(
                bytes(range(32)), EVENT_ID, 1700000000, BODY
            ),
            "User-Agent": f"Countersign/{__version__}",
            "Content-Type": "application/json",
        }

    def test_rotation_signs_with_both_newest_first(self) -> None:
        headers = headers_for(NEW_SECRET, OLD_SECRET, ts=1700000000)
        new = expected_standard(bytes(range(32)), EVENT_ID, 1700000000, BODY)
        old = expected_standard(bytes(range(100, 132)), EVENT_ID, 1700000000, BODY)
        assert headers["webhook-signature"] == f"{new} {old}"
        assert headers["X-Approval-Signature"] == expected_awe(
            NEW_SECRET, 1700000000, BODY
        )

    def test_no_secret_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            headers_for(ts=1700000000)


class TestStandardWebhooksPackage:
    """The reference receiver library accepts what we send."""

    def test_accepts_our_headers(self) -> None:
        headers = headers_for(NEW_SECRET, ts=int(time.time()))
        assert Webhook(NEW_SECRET).verify(BODY, headers) == {
            "event_id": "e-1",
            "event_type": "request_approved",
            "status": "approved",
        }

    @pytest.mark.parametrize("receiver_secret", [NEW_SECRET, OLD_SECRET])
    def test_accepts_either_secret_during_rotation(self, receiver_secret: str) -> None:
        headers = headers_for(NEW_SECRET, OLD_SECRET, ts=int(time.time()))
        Webhook(receiver_secret).verify(BODY, headers, json_parse=False)

    def test_rejects_a_tampered_body(self) -> None:
        headers = headers_for(NEW_SECRET, ts=int(time.time()))
        with pytest.raises(WebhookVerificationError):
            Webhook(NEW_SECRET).verify(BODY.replace(b"approved", b"rejected"), headers)

    def test_rejects_another_secret(self) -> None:
        headers = headers_for(NEW_SECRET, ts=int(time.time()))
        with pytest.raises(WebhookVerificationError):
            Webhook(OLD_SECRET).verify(BODY, headers)

    def test_unprefixed_secret(self) -> None:
        # The package base64-decodes *string* secrets even without `whsec_`; a receiver holding
        # an un-prefixed secret passes its UTF-8 bytes, which is the key the contract defines.
        headers = headers_for("plain-secret", ts=int(time.time()))
        Webhook(b"plain-secret").verify(BODY, headers, json_parse=False)

    def test_generated_secret(self) -> None:
        secret = generate_secret()
        headers = headers_for(secret, ts=int(time.time()))
        Webhook(secret).verify(BODY, headers, json_parse=False)


class TestVerifyStandard:
    NOW = 1_700_000_000

    def test_accepts_own_signature(self) -> None:
        headers = headers_for(NEW_SECRET, ts=self.NOW)
        assert verify_standard(NEW_SECRET, headers, BODY, now=self.NOW)

    def test_accepts_specification_example(self) -> None:
        headers = {
            "webhook-id": SPEC_ID,
            "webhook-timestamp": str(SPEC_TS),
            "webhook-signature": SPEC_SIGNATURE,
        }
        assert verify_standard(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TS)

    @pytest.mark.parametrize("secret", [NEW_SECRET, OLD_SECRET])
    def test_accepts_either_secret_during_rotation(self, secret: str) -> None:
        headers = headers_for(NEW_SECRET, OLD_SECRET, ts=self.NOW)
        assert verify_standard(secret, headers, BODY, now=self.NOW)

    def test_header_names_are_case_insensitive(self) -> None:
        headers = {
            k.upper(): v for k, v in headers_for(NEW_SECRET, ts=self.NOW).items()
        }
        assert verify_standard(NEW_SECRET, headers, BODY, now=self.NOW)

    def test_rejects_tampered_body_wrong_secret_and_wrong_id(self) -> None:
        headers = headers_for(NEW_SECRET, ts=self.NOW)
        assert not verify_standard(NEW_SECRET, headers, BODY + b" ", now=self.NOW)
        assert not verify_standard(OLD_SECRET, headers, BODY, now=self.NOW)
        other_id = {**headers, "webhook-id": "another-event"}
        assert not verify_standard(NEW_SECRET, other_id, BODY, now=self.NOW)

    @pytest.mark.parametrize(
        ("offset", "ok"), [(300, True), (-300, True), (301, False), (-301, False)]
    )
    def test_timestamp_tolerance(self, offset: int, ok: bool) -> None:
        headers = headers_for(NEW_SECRET, ts=self.NOW)
        assert verify_standard(NEW_SECRET, headers, BODY, now=self.NOW + offset) is ok

    @pytest.mark.parametrize(
        "change",
        [
            {"webhook-timestamp": "1.7e9"},
            {"webhook-timestamp": ""},
            {"webhook-signature": "v2,abc"},
            {"webhook-signature": "v1,not-base64!"},
            {"webhook-signature": ""},
            {"webhook-id": ""},
        ],
    )
    def test_rejects_malformed_headers(self, change: dict[str, str]) -> None:
        headers = {**headers_for(NEW_SECRET, ts=self.NOW), **change}
        assert not verify_standard(NEW_SECRET, headers, BODY, now=self.NOW)

    def test_skips_unknown_and_malformed_entries(self) -> None:
        good = headers_for(NEW_SECRET, ts=self.NOW)["webhook-signature"]
        headers = {
            **headers_for(NEW_SECRET, ts=self.NOW),
            "webhook-signature": f"v2,xyz v1,*** {good}",
        }
        assert verify_standard(NEW_SECRET, headers, BODY, now=self.NOW)

    def test_rejects_missing_headers(self) -> None:
        assert not verify_standard(NEW_SECRET, {}, BODY, now=self.NOW)


class TestVerifyAwe:
    NOW = 1_700_000_000

    def test_accepts_own_signature(self) -> None:
        headers = headers_for(NEW_SECRET, ts=self.NOW)
        assert verify_awe(NEW_SECRET, headers, BODY, now=self.NOW)

    def test_accepts_known_answer_with_any_case(self) -> None:
        headers = {
            "x-approval-timestamp": str(SPEC_TS),
            "X-APPROVAL-SIGNATURE": SPEC_AWE_SIGNATURE.upper(),
        }
        assert verify_awe(SPEC_SECRET, headers, SPEC_BODY, now=SPEC_TS)

    def test_only_the_newest_secret_signs(self) -> None:
        headers = headers_for(NEW_SECRET, OLD_SECRET, ts=self.NOW)
        assert verify_awe(NEW_SECRET, headers, BODY, now=self.NOW)
        assert not verify_awe(OLD_SECRET, headers, BODY, now=self.NOW)

    def test_rejects_tampered_body_and_stale_timestamp(self) -> None:
        headers = headers_for(NEW_SECRET, ts=self.NOW)
        assert not verify_awe(NEW_SECRET, headers, BODY + b" ", now=self.NOW)
        assert not verify_awe(NEW_SECRET, headers, BODY, now=self.NOW + 301)

    def test_timestamp_is_part_of_the_signature(self) -> None:
        headers = {
            **headers_for(NEW_SECRET, ts=self.NOW),
            "X-Approval-Timestamp": str(self.NOW + 1),
        }
        assert not verify_awe(NEW_SECRET, headers, BODY, now=self.NOW)

    @pytest.mark.parametrize("signature", ["", "sha256=zz", "md5=00", "sha256="])
    def test_rejects_malformed_signature(self, signature: str) -> None:
        headers = {
            **headers_for(NEW_SECRET, ts=self.NOW),
            "X-Approval-Signature": signature,
        }
        assert not verify_awe(NEW_SECRET, headers, BODY, now=self.NOW)


class TestGenerateSecret:
    def test_shape(self) -> None:
        secret = generate_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert standard_key(secret) == base64.b64decode(secret[6:])

    def test_fresh_each_time(self) -> None:
        assert len({generate_secret() for _ in range(20)}) == 20
