"""SVG pictures of approval flows: one drawing module for policy versions and for requests.

Steps run top to bottom in `stage_order`; the stages of one parallel group sit side by side in
one row, inside a dashed frame, with a fork above and a join below. Each stage box names its mode,
its skip condition, its SLA and reminders, and either the policy's rules (policy diagrams) or the
people (request diagrams): who approved, who rejected, who is still pending, and when the stage is
due. Request boxes are coloured by stage status; the current stage has a thick blue border.

The picture is self-contained: no scripts, no styles, no external fonts or images, presentation
attributes only, so it renders under `Content-Security-Policy: default-src 'none'` and in an
`<img>`. Every piece of text is XML-escaped, and characters XML cannot carry are dropped, whatever
the names in a policy or a directory contain. Pure string building: no I/O, no clock (`now` is
passed in).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from countersign.policies.schemas import PolicyOut, RuleIn, StageIn

SVG_NS = "http://www.w3.org/2000/svg"
SVG_MEDIA_TYPE = "image/svg+xml"
# Sent with every diagram: the picture may be opened on its own, and nothing in it may load or
# run anything; it changes as a request moves on, so it is never cached.
SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

BOX_W = 280
GAP_X = 28
GAP_Y = 44
MARGIN = 24
PAD = 10
LINE_H = 16
HEADER_H = 58
# Characters of 12 px sans-serif that fit in a box line (a conservative average glyph width).
LINE_CHARS = 40

# Fill colours by stage status; policy diagrams draw every stage as "pending".
STATUS_FILL = {
    "pending": "#f4f5f7",
    "resolving": "#fff4ce",
    "active": "#dbeafe",
    "approved": "#dcfce7",
    "rejected": "#fee2e2",
    "skipped": "#e5e7eb",
    "cancelled": "#e5e7eb",
}
CURRENT_STROKE = "#1d4ed8"
STROKE = "#6b7280"
TEXT = "#111827"
MUTED = "#4b5563"

# XML 1.0 allows tab, newline, carriage return and everything from U+0020 except surrogates and
# U+FFFE/U+FFFF; anything else (a NUL in a user name...) would make the whole picture unreadable.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """`value` as text that is safe inside an element or a double-quoted attribute."""
    text = _NOT_XML.sub("", str(value))
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def _clip(text: str, limit: int = LINE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- what is drawn -----------------------------------------------------------------------------


@dataclass
class DiagramStage:
    """One stage box. Policy diagrams fill the rule fields, request diagrams the people."""

    stage_order: int
    name: str
    mode: str
    mode_value: int | None = None
    veto: bool | None = None
    parallel_group: int | None = None
    skip_if: Any | None = None
    on_empty: str = "block"
    sla_hours: float | None = None
    on_breach: str | None = None
    reminder_hours: float | None = None
    approver_rules: list[str] = field(default_factory=list)
    observer_rules: list[str] = field(default_factory=list)
    # Request diagrams only.
    status: str | None = None
    current: bool = False
    due_at: datetime | None = None
    skip_reason: str | None = None
    approved_by: list[str] = field(default_factory=list)
    rejected_by: list[str] = field(default_factory=list)
    abstained: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


def group_steps(stages: Sequence[DiagramStage]) -> list[list[DiagramStage]]:
    """Stages in order, adjacent stages of the same `parallel_group` merged into one step."""
    steps: list[list[DiagramStage]] = []
    for stage in sorted(stages, key=lambda s: s.stage_order):
        last = steps[-1] if steps else None
        if (
            last
            and stage.parallel_group is not None
            and last[0].parallel_group == stage.parallel_group
        ):
            last.append(stage)
        else:
            steps.append([stage])
    return steps


def rule_text(
    rule_type: str, rule_value: dict[str, Any], required: bool = False
) -> str:
    """A rule as a person reads it: `group /districts/D1`, `user alice (required)`."""
    if rule_type == "user":
        text = f"user {rule_value.get('user_id')}"
    elif rule_type == "role":
        client = rule_value.get("client")
        text = f"role {rule_value.get('role')}" + (f" of {client}" if client else "")
    elif rule_type == "group":
        text = f"group {rule_value.get('group')}"
    elif rule_type == "expression":
        text = f"expression {logic_text(rule_value.get('logic'))}"
    elif rule_type == "http":
        text = f"http {rule_value.get('url')}"
    else:
        text = rule_type
    return text + (" (required)" if required else "")


_INFIX = {
    "==",
    "!=",
    "===",
    "!==",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "+",
    "-",
    "*",
    "/",
    "%",
}


def logic_text(logic: Any, depth: int = 0) -> str:
    """JSONLogic in a readable infix form (`amount < 100 and agency == "HRSA"`), for labels."""
    if depth > 8:
        return "…"
    if isinstance(logic, dict) and len(logic) == 1:
        [(op, args)] = logic.items()
        values = args if isinstance(args, list) else [args]
        if op == "var":
            name = values[0] if values else ""
            return str(name) if name != "" else "data"
        parts = [logic_text(v, depth + 1) for v in values]
        nested = [
            f"({p})" if isinstance(v, dict) and _is_compound(v) else p
            for p, v in zip(parts, values, strict=True)
        ]
        if op in _INFIX and len(values) == 2:
            return f"{nested[0]} {op} {nested[1]}"
        if op in ("<", "<=") and len(values) == 3:
            return f"{nested[0]} {op} {nested[1]} {op} {nested[2]}"
        if op in ("and", "or"):
            return f" {op} ".join(nested)
        if op == "!":
            return f"not {nested[0]}" if nested else "not"
        if op == "!!":
            return nested[0] if nested else ""
        return f"{op}({', '.join(parts)})"
    if isinstance(logic, list):
        return "[" + ", ".join(logic_text(v, depth + 1) for v in logic) + "]"
    return json.dumps(logic, ensure_ascii=False)


def _is_compound(logic: dict[str, Any]) -> bool:
    return next(iter(logic)) in ("and", "or") or next(iter(logic)) in _INFIX


def _mode_text(stage: DiagramStage) -> str:
    if stage.mode == "all":
        text = "all must approve"
    elif stage.mode == "any-n":
        text = f"any {stage.mode_value or 1} approves"
    elif stage.mode == "quorum":
        text = f"quorum of {stage.mode_value}"
    else:
        text = f"{stage.mode_value}% approve"
    default_veto = stage.mode in ("all", "any-n")
    if stage.veto is not None and stage.veto != default_veto:
        text += ", one reject vetoes" if stage.veto else ", rejects do not veto"
    return text


def _when(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _hours(value: float) -> str:
    return f"{value:g} h"


def _names(label: str, names: Sequence[str]) -> str:
    """`Approved: alice, bob +3 more`, fitted to one line."""
    shown: list[str] = []
    for i, name in enumerate(names):
        rest = len(names) - i - 1
        candidate = ", ".join([*shown, name])
        tail = f" +{rest} more" if rest else ""
        if len(f"{label}: {candidate}{tail}") > LINE_CHARS and shown:
            return f"{label}: {', '.join(shown)} +{len(names) - len(shown)} more"
        shown.append(name)
    return f"{label}: {', '.join(shown)}"


def _status_text(stage: DiagramStage, now: datetime | None) -> str | None:
    if stage.status is None:
        return None
    text = stage.status
    if stage.status == "skipped" and stage.skip_reason:
        text += f" ({stage.skip_reason})"
    if stage.current:
        text += ", current"
    return text[:1].upper() + text[1:]


def stage_lines(stage: DiagramStage, now: datetime | None) -> list[tuple[str, str]]:
    """The box's lines as (kind, text); kind picks the style: title, status, or plain."""
    lines: list[tuple[str, str]] = [
        ("title", f"{stage.stage_order}. {stage.name}"),
        ("plain", _mode_text(stage)),
    ]
    status = _status_text(stage, now)
    if status:
        lines.append(("status", status))
    if stage.due_at is not None and stage.status in (None, "active", "resolving"):
        overdue = now is not None and stage.due_at <= now
        lines.append(
            ("plain", ("Overdue since " if overdue else "Due ") + _when(stage.due_at))
        )
    for label, names in (
        ("Approved", stage.approved_by),
        ("Rejected", stage.rejected_by),
        ("Abstained", stage.abstained),
        ("Pending", stage.pending),
    ):
        if names:
            lines.append(("plain", _names(label, names)))
    if stage.approver_rules:
        lines.append(("plain", _names("Approvers", stage.approver_rules)))
    if stage.observer_rules:
        lines.append(("plain", _names("Observers", stage.observer_rules)))
    if stage.skip_if is not None:
        lines.append(("plain", f"Skip if {logic_text(stage.skip_if)}"))
    if stage.on_empty == "skip":
        lines.append(("plain", "Skipped when nobody resolves"))
    if stage.sla_hours:
        sla = f"SLA {_hours(stage.sla_hours)} → {stage.on_breach or 'notify'}"
        if stage.reminder_hours:
            sla += f", remind every {_hours(stage.reminder_hours)}"
        lines.append(("plain", sla))
    elif stage.reminder_hours:
        lines.append(("plain", f"Remind every {_hours(stage.reminder_hours)}"))
    return [(kind, _clip(text)) for kind, text in lines]


def _full_description(stage: DiagramStage, now: datetime | None) -> str:
    """Everything about the stage, unclipped, for the box's own `<title>` (a tooltip)."""
    parts = [f"Stage {stage.stage_order}: {stage.name}", _mode_text(stage)]
    status = _status_text(stage, now)
    if status:
        parts.append(status)
    if stage.due_at is not None:
        parts.append(f"due {_when(stage.due_at)}")
    for label, names in (
        ("approved", stage.approved_by),
        ("rejected", stage.rejected_by),
        ("abstained", stage.abstained),
        ("pending", stage.pending),
        ("approvers", stage.approver_rules),
        ("observers", stage.observer_rules),
    ):
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    if stage.skip_if is not None:
        parts.append(f"skip if {logic_text(stage.skip_if)}")
    if stage.sla_hours:
        parts.append(
            f"SLA {_hours(stage.sla_hours)}, then {stage.on_breach or 'notify'}"
        )
    return "; ".join(parts)


# --- drawing -----------------------------------------------------------------------------------


def render_diagram(
    title: str,
    stages: Sequence[DiagramStage],
    *,
    subtitle: str = "",
    now: datetime | None = None,
) -> str:
    """The SVG document for `stages` (an image with a `<title>` and a `<desc>`)."""
    steps = group_steps(stages)
    widest = max((len(step) for step in steps), default=1)
    # 20 more than the boxes: room for the dashed frame around a parallel row.
    width = max(MARGIN * 2 + 20 + widest * (BOX_W + GAP_X) - GAP_X, 420)
    lines = {s.stage_order: stage_lines(s, now) for s in stages}
    row_heights = [
        PAD * 2 + LINE_H * max(len(lines[s.stage_order]) for s in step)
        for step in steps
    ]
    framed = [len(step) > 1 or step[0].parallel_group is not None for step in steps]
    # A framed (parallel) row needs room for its label above the boxes.
    row_tops: list[float] = []
    y = MARGIN + HEADER_H
    for height, frame in zip(row_heights, framed, strict=True):
        y += 18 if frame else 0
        row_tops.append(y)
        y += height + GAP_Y
    height_total = max(y - GAP_Y + MARGIN, MARGIN + HEADER_H + 40)
    if not steps:
        height_total += 20

    out = [
        f'<svg xmlns="{SVG_NS}" role="img" aria-labelledby="diagram-title diagram-desc" '
        f'width="{width}" height="{height_total:g}" viewBox="0 0 {width} {height_total:g}" '
        f'font-family="sans-serif" font-size="12" fill="{TEXT}">',
        f'<title id="diagram-title">{xml_text(title)}</title>',
        f'<desc id="diagram-desc">{xml_text(_summary(steps, now))}</desc>',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        f'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="{STROKE}"/></marker></defs>',
        f'<rect x="0" y="0" width="{width}" height="{height_total:g}" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="15" font-weight="bold">'
        f"{xml_text(_clip(title, 90))}</text>",
    ]
    if subtitle:
        out.append(
            f'<text x="{MARGIN}" y="{MARGIN + 34}" fill="{MUTED}">'
            f"{xml_text(_clip(subtitle, 100))}</text>"
        )
    if not steps:
        out.append(
            f'<text x="{MARGIN}" y="{MARGIN + HEADER_H + 16}">'
            "No stages: requests are approved at once.</text>"
        )

    previous_bottom: float | None = None
    center_x = width / 2
    for index, step in enumerate(steps):
        top = row_tops[index]
        row_h = row_heights[index]
        row_w = len(step) * (BOX_W + GAP_X) - GAP_X
        left = (width - row_w) / 2
        centers = [left + i * (BOX_W + GAP_X) + BOX_W / 2 for i in range(len(step))]
        if framed[index]:
            group = step[0].parallel_group
            label = (
                f"Parallel group {group}: all must complete"
                if group is not None
                else "Parallel group"
            )
            out.append(
                f'<rect x="{left - 10:g}" y="{top - 24:g}" width="{row_w + 20:g}" '
                f'height="{row_h + 34:g}" rx="10" fill="none" stroke="{STROKE}" '
                'stroke-dasharray="6 4"/>'
                f'<text x="{left - 2:g}" y="{top - 10:g}" fill="{MUTED}" font-size="11">'
                f"{xml_text(_clip(label, 60))}</text>"
            )
        if previous_bottom is not None:
            entry = top - (24 if framed[index] else 0)
            out.append(_arrow(center_x, previous_bottom, entry))
        if len(step) > 1:
            # Fork above and join below the side-by-side stages.
            out.append(_bus(centers, top - 6, top))
            out.append(_bus(centers, top + row_h + 6, top + row_h))
        for i, stage in enumerate(step):
            out.append(_box(stage, left + i * (BOX_W + GAP_X), top, row_h, lines, now))
        previous_bottom = top + row_h + (10 if framed[index] else 0)
    out.append("</svg>")
    return "\n".join(out)


def _arrow(x: float, y1: float, y2: float) -> str:
    return (
        f'<line x1="{x:g}" y1="{y1 + 2:g}" x2="{x:g}" y2="{y2 - 3:g}" stroke="{STROKE}" '
        'stroke-width="2" marker-end="url(#arrow)"/>'
    )


def _bus(centers: Sequence[float], bus_y: float, box_edge: float) -> str:
    parts = [
        f'<line x1="{centers[0]:g}" y1="{bus_y:g}" x2="{centers[-1]:g}" y2="{bus_y:g}" '
        f'stroke="{STROKE}" stroke-width="1.5"/>'
    ]
    for c in centers:
        parts.append(
            f'<line x1="{c:g}" y1="{bus_y:g}" x2="{c:g}" y2="{box_edge:g}" '
            f'stroke="{STROKE}" stroke-width="1.5"/>'
        )
    return "".join(parts)


def _box(
    stage: DiagramStage,
    x: float,
    y: float,
    height: float,
    lines: dict[int, list[tuple[str, str]]],
    now: datetime | None,
) -> str:
    state = stage.status or "pending"
    stroke, stroke_width = (CURRENT_STROKE, 3) if stage.current else (STROKE, 1)
    parts = [
        f'<g class="stage" data-stage-order="{stage.stage_order}" '
        f'data-status="{xml_text(state)}"'
        + (' data-current="true"' if stage.current else "")
        + ">",
        f'<rect x="{x:g}" y="{y:g}" width="{BOX_W}" height="{height:g}" rx="8" '
        f'fill="{STATUS_FILL.get(state, "#ffffff")}" stroke="{stroke}" '
        f'stroke-width="{stroke_width}"/>',
        f"<title>{xml_text(_full_description(stage, now))}</title>",
    ]
    for i, (kind, text) in enumerate(lines[stage.stage_order]):
        style = {
            "title": ' font-weight="bold" font-size="13"',
            "status": ' font-weight="bold"',
        }.get(kind, "")
        parts.append(
            f'<text x="{x + PAD:g}" y="{y + PAD + 12 + i * LINE_H:g}"{style}>'
            f"{xml_text(text)}</text>"
        )
    parts.append("</g>")
    return "".join(parts)


def _summary(steps: Sequence[Sequence[DiagramStage]], now: datetime | None) -> str:
    if not steps:
        return "No stages."
    described = []
    for step in steps:
        names = [
            f"{s.stage_order}. {s.name}"
            + (f" ({_status_text(s, now)})" if s.status else "")
            for s in step
        ]
        described.append(
            " and ".join(names) + (" in parallel" if len(step) > 1 else "")
        )
    return "Stages in order: " + "; then ".join(described) + "."


# --- policies ----------------------------------------------------------------------------------


def _rules(rules: Sequence[RuleIn], kind: str) -> list[str]:
    return [
        rule_text(r.rule_type, r.rule_value, r.required)
        for r in rules
        if r.kind == kind
    ]


def policy_stage(stage: StageIn) -> DiagramStage:
    return DiagramStage(
        stage_order=stage.stage_order,
        name=stage.name,
        mode=stage.mode,
        mode_value=stage.mode_value,
        veto=stage.veto,
        parallel_group=stage.parallel_group,
        skip_if=stage.skip_if,
        on_empty=stage.on_empty,
        sla_hours=stage.sla_hours,
        on_breach=stage.on_breach,
        reminder_hours=stage.reminder_hours,
        approver_rules=_rules(stage.rules, "approver"),
        observer_rules=_rules(stage.rules, "observer"),
    )


def render_policy_svg(policy: PolicyOut) -> str:
    subtitle = f"{policy.policy_key} v{policy.version}, {policy.status}"
    if policy.applies_if is not None:
        subtitle += f"; applies if {logic_text(policy.applies_if)}"
    return render_diagram(
        policy.name,
        [policy_stage(s) for s in policy.stages],
        subtitle=subtitle,
    )
