import { Badge } from "@mantine/core";

const COLOURS: Record<string, string> = {
  draft: "gray",
  active: "green",
  archived: "dark",
  pending: "yellow",
  resolving: "orange",
  approved: "green",
  rejected: "red",
  skipped: "gray",
  cancelled: "dark",
  expired: "grape",
  changes_requested: "violet",
  open: "blue",
  claimed: "cyan",
  completed: "green",
  reassigned: "gray",
  delivered: "green",
  exhausted: "red",
  rotated: "yellow",
  revoked: "red",
};

/**
 * A status word as a badge with a coloured dot: the word carries the meaning, the dot the colour
 * (a dot badge keeps the text dark, so it passes contrast on every colour).
 */
export function StatusBadge({ status }: { status: string | null | undefined }) {
  if (!status) return null;
  return (
    // Never cut to "EXHAUS…" in a narrow column: the word is the information.
    <Badge color={COLOURS[status] ?? "blue"} variant="dot" radius="sm" c="dark.7" miw="max-content">
      {status.replace(/_/g, " ")}
    </Badge>
  );
}
