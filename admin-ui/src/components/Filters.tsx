// Filter controls for the operator lists: values live in the query string (useUrlState), text
// fields commit on Enter or when they lose focus (not on every key, which would refetch per key).
import { Text, TextInput, type TextInputProps } from "@mantine/core";
import { useEffect, useState } from "react";

export function FilterText({
  value,
  onCommit,
  ...props
}: { value: string | undefined; onCommit: (value: string) => void } & Omit<TextInputProps, "value" | "onChange">) {
  const [draft, setDraft] = useState(value ?? "");
  useEffect(() => setDraft(value ?? ""), [value]);
  const commit = () => {
    if (draft.trim() !== (value ?? "")) onCommit(draft.trim());
  };
  return (
    <TextInput
      size="sm"
      {...props}
      value={draft}
      onChange={(e) => setDraft(e.currentTarget.value)}
      onBlur={commit}
      onKeyDown={(e) => {
        if (e.key === "Enter") commit();
      }}
    />
  );
}

/** `datetime-local` value (the browser's local time) to RFC 3339 for the API, or undefined. */
export function localToIso(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** RFC 3339 to a `datetime-local` value in the browser's time zone. */
export function isoToLocal(value: string | Date): string {
  const d = typeof value === "string" ? new Date(value) : value;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A short id for tables (the full one in the title, for copying). */
export function ShortId({ id }: { id: string }) {
  return (
    <Text span ff="monospace" size="sm" title={id}>
      {id.slice(0, 8)}
    </Text>
  );
}
