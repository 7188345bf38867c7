// A text field that suggests entries of the directory (users, roles, groups, clients) as you type.
// Free text is allowed: a rule may name someone the directory does not list yet.
import { Autocomplete, Text } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";

import { useDirectory, type DirectoryKind } from "../api/directory";

export interface DirectoryPickerProps {
  kind: DirectoryKind;
  label: string;
  value: string;
  onChange: (value: string) => void;
  error?: string[];
  client?: string;
  disabled?: boolean;
  placeholder?: string;
  description?: string;
}

export function DirectoryPicker({ kind, label, value, onChange, error = [], client, disabled, placeholder, description }: DirectoryPickerProps) {
  const [q] = useDebouncedValue(value, 250);
  const options = useDirectory(kind, kind === "clients" ? "" : q, client);
  const hints = new Map((options.data ?? []).map((o) => [o.value, o.hint]));
  return (
    <Autocomplete
      label={label}
      value={value}
      onChange={onChange}
      data={[...new Set((options.data ?? []).map((o) => o.value))]}
      renderOption={({ option }) => (
        <span>
          {option.value}
          {hints.get(option.value) && (
            <Text span c="dimmed" size="xs">{` ${hints.get(option.value)}`}</Text>
          )}
        </span>
      )}
      error={error.length ? error.join("; ") : undefined}
      description={options.isError ? "The directory could not be reached; type the value." : description}
      disabled={disabled}
      placeholder={placeholder}
      limit={50}
    />
  );
}
