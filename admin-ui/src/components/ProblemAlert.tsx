import { Alert, Code, List, Text } from "@mantine/core";

import { ApiError } from "../lib/problem";

/**
 * A problem+json error for people: the title and detail, the per-field problems (with their
 * pointer, for those not shown next to a field) and the trace id to quote to an operator.
 */
export function ProblemAlert({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const problem = error instanceof ApiError ? error.problem : { detail: error instanceof Error ? error.message : String(error) };
  const heading = title ?? problem.title ?? "Something went wrong";
  const fieldErrors = error instanceof ApiError ? error.fieldErrors : [];
  return (
    <Alert color="red" title={heading} role="alert" variant="light">
      {problem.detail && <Text size="sm">{problem.detail}</Text>}
      {fieldErrors.length > 0 && (
        <List size="sm" mt="xs">
          {fieldErrors.map((e, i) => (
            <List.Item key={`${e.pointer}-${i}`}>
              <Code>{e.pointer}</Code> {e.detail ?? e.message}
            </List.Item>
          ))}
        </List>
      )}
      {(problem.code || problem.trace_id) && (
        <Text size="xs" c="dimmed" mt="xs">
          {problem.code && <>code {problem.code}</>}
          {problem.code && problem.trace_id && " · "}
          {problem.trace_id && <>trace {problem.trace_id}</>}
        </Text>
      )}
    </Alert>
  );
}
