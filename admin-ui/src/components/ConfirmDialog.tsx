// The one dialog for "are you sure?" before a destructive, bulk or hard-to-undo action, with or
// without fields of its own (a reason, grace hours, a new assignee). It is a form: Enter in a
// field confirms, like the button.
import { Button, Group, Modal, Stack, Text } from "@mantine/core";
import type { ReactNode } from "react";

export interface ConfirmDialogProps {
  opened: boolean;
  title: string;
  /** What will happen (a string becomes a paragraph), and any fields the action takes. */
  children: ReactNode;
  /** The confirm button names the action ("Revoke secret", not "OK"). */
  confirmLabel: string;
  onConfirm: () => void;
  onClose: () => void;
  cancelLabel?: string;
  loading?: boolean;
  /** A field is missing or invalid: the action cannot be confirmed yet. */
  confirmDisabled?: boolean;
  color?: string;
  size?: string;
}

export function ConfirmDialog({
  opened,
  title,
  children,
  confirmLabel,
  onConfirm,
  onClose,
  cancelLabel = "Cancel",
  loading,
  confirmDisabled,
  color = "red",
  size,
}: ConfirmDialogProps) {
  return (
    <Modal opened={opened} onClose={onClose} title={title} centered size={size}>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!confirmDisabled && !loading) onConfirm();
        }}
      >
        <Stack gap="md">
          {typeof children === "string" ? <Text size="sm">{children}</Text> : children}
          <Group justify="flex-end" gap="xs">
            <Button variant="default" onClick={onClose}>
              {cancelLabel}
            </Button>
            <Button type="submit" color={color} loading={loading} disabled={confirmDisabled}>
              {confirmLabel}
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
