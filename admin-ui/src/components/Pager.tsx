// Cursor paging for the list endpoints (opaque `cursor`, next one in `X-Next-Cursor`).
import { Button, Group } from "@mantine/core";
import { useCallback, useState } from "react";

export interface CursorPager {
  /** The cursor of the page shown (undefined = first page); pass it to the list call. */
  cursor: string | undefined;
  pageNumber: number;
  next: (nextCursor: string) => void;
  previous: () => void;
  reset: () => void;
}

export function useCursorPager(): CursorPager {
  const [stack, setStack] = useState<string[]>([]);
  const next = useCallback((c: string) => setStack((s) => [...s, c]), []);
  const previous = useCallback(() => setStack((s) => s.slice(0, -1)), []);
  const reset = useCallback(() => setStack([]), []);
  return { cursor: stack[stack.length - 1], pageNumber: stack.length + 1, next, previous, reset };
}

export function Pager({ pager, nextCursor, label = "Pages" }: { pager: CursorPager; nextCursor: string | null | undefined; label?: string }) {
  if (pager.pageNumber === 1 && !nextCursor) return null;
  return (
    <Group component="nav" aria-label={label} justify="flex-end" gap="xs" mt="sm">
      <Button variant="default" size="xs" disabled={pager.pageNumber === 1} onClick={pager.previous}>
        Previous page
      </Button>
      <span aria-live="polite">Page {pager.pageNumber}</span>
      <Button variant="default" size="xs" disabled={!nextCursor} onClick={() => nextCursor && pager.next(nextCursor)}>
        Next page
      </Button>
    </Group>
  );
}
