// Filters kept in the query string, so a filtered list is a link that can be shared and survives
// a reload. Routes that use this accept any string search params (router.tsx `stringSearch`).
import { useNavigate, useSearch } from "@tanstack/react-router";
import { useCallback } from "react";

export type SearchParams = Record<string, string | undefined>;

/** The route-level validator: keep string values, drop everything else. */
export function stringSearch(raw: Record<string, unknown>): SearchParams {
  const out: SearchParams = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v === "string" && v !== "") out[k] = v;
    else if (typeof v === "number" || typeof v === "boolean") out[k] = String(v);
  }
  return out;
}

/**
 * `const [filters, setFilters] = useUrlState()`: `filters.status`, `setFilters({status: "x"})`.
 * Setting a value to "" or undefined removes it; changing any filter drops the `cursor` (page).
 */
export function useUrlState(): [SearchParams, (patch: SearchParams, options?: { keepCursor?: boolean }) => void] {
  const search = stringSearch(useSearch({ strict: false }) as Record<string, unknown>);
  const navigate = useNavigate();
  const set = useCallback(
    (patch: SearchParams, options?: { keepCursor?: boolean }) => {
      void navigate({
        to: ".",
        replace: true,
        search: (prev: Record<string, unknown>) => {
          const next: Record<string, unknown> = { ...prev };
          if (!options?.keepCursor && !("cursor" in patch)) delete next.cursor;
          for (const [k, v] of Object.entries(patch)) {
            if (v === undefined || v === "") delete next[k];
            else next[k] = v;
          }
          return next;
        },
      } as never);
    },
    [navigate],
  );
  return [search, set];
}

/** Only the keys in `keys` that have a value: handy as the query-string part of an API call. */
export function pick<K extends string>(search: SearchParams, keys: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const k of keys) {
    const v = search[k];
    if (v !== undefined && v !== "") out[k] = v;
  }
  return out;
}
