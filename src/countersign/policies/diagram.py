"""SVG pictures of a policy's stages: one column per step, parallel-group stages stacked in a column.

Pure string building (no drawing library): callers embed the picture in their own UIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from countersign.policies.schemas import PolicyOut, StageIn

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 220, 92, 48, 16, 24

# Fill colours by stage status (request diagrams); policy diagrams use "pending".
STATUS_FILL = {
    "pending": "#f4f5f7",
    "resolving": "#fff4ce",
    "active": "#dbeafe",
    "approved": "#dcfce7",
    "rejected": "#fee2e2",
    "skipped": "#e5e7eb",
    "cancelled": "#e5e7eb",
}


def group_steps(stages: Sequence[StageIn]) -> list[list[StageIn]]:
    """Stages in order, adjacent stages of the same `parallel_group` merged into one step."""
    steps: list[list[StageIn]] = []
    for stage in sorted(stages, key=lambda s: s.stage_order):
        last = steps[-1] if steps else None
        if (
            last
            and stage.parallel_group
            and last[0].parallel_group == stage.parallel_group
        ):
            last.append(stage)
        else:
            steps.append([stage])
    return steps


def _mode_text(stage: StageIn) -> str:
    if stage.mode == "all":
        return "all must approve"
    if stage.mode == "any-n":
        return f"any {stage.mode_value or 1}"
    if stage.mode == "quorum":
        return f"quorum of {stage.mode_value}"
    return f"{stage.mode_value}% approve"


def render_stages_svg(
    title: str,
    stages: Sequence[StageIn],
    *,
    statuses: Mapping[int, str] | None = None,
    current_stage_order: int | None = None,
) -> str:
    steps = group_steps(stages)
    tallest = max((len(step) for step in steps), default=1)
    width = MARGIN * 2 + max(len(steps), 1) * (BOX_W + GAP_X) - GAP_X
    height = MARGIN * 2 + 28 + tallest * (BOX_H + GAP_Y) - GAP_Y
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="{MARGIN}" y="{MARGIN + 4}" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    if not steps:
        out.append(
            f'<text x="{MARGIN}" y="{MARGIN + 40}">No stages: requests are approved at once.</text>'
        )
    top = MARGIN + 28
    for column, step in enumerate(steps):
        x = MARGIN + column * (BOX_W + GAP_X)
        if column > 0:
            mid = top + BOX_H / 2
            out.append(
                f'<line x1="{x - GAP_X + 4}" y1="{mid}" x2="{x - 6}" y2="{mid}" stroke="#555" stroke-width="2" '
                f'marker-end="url(#arrow)"/>'
            )
        for row, stage in enumerate(step):
            y = top + row * (BOX_H + GAP_Y)
            state = (statuses or {}).get(stage.stage_order, "pending")
            current = stage.stage_order == current_stage_order
            stroke, stroke_width = ("#1d4ed8", 3) if current else ("#555", 1)
            out.append(
                f'<g class="stage" data-stage-order="{stage.stage_order}" data-status="{escape(state)}">'
                f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{STATUS_FILL.get(state, "#fff")}" '
                f'stroke="{stroke}" stroke-width="{stroke_width}"/>'
            )
            lines = [f"{stage.stage_order}. {stage.name}", _mode_text(stage)]
            if stage.parallel_group:
                lines.append(f"parallel: {stage.parallel_group}")
            if stage.skip_if is not None:
                lines.append("skipped when skip_if holds")
            if stage.sla_hours:
                lines.append(
                    f"SLA {stage.sla_hours:g} h → {stage.on_breach or 'notify'}"
                )
            if statuses is not None:
                lines.append(f"status: {state}")
            for i, text in enumerate(lines[:5]):
                weight = ' font-weight="bold"' if i == 0 else ""
                out.append(
                    f'<text x="{x + 10}" y="{y + 18 + i * 15}"{weight}>{escape(text[:34])}</text>'
                )
            out.append("</g>")
    out.insert(
        1,
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="6" refY="4" orient="auto">'
        '<path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
    )
    out.append("</svg>")
    return "\n".join(out)


def render_policy_svg(policy: PolicyOut) -> str:
    return render_stages_svg(
        f"{policy.name} ({policy.policy_key} v{policy.version}, {policy.status})",
        policy.stages,
    )
