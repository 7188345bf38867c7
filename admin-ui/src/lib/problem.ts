// RFC 9457 problem details as the service sends them (API.md "Conventions"), and the error the
// query hooks throw so every page can show one consistently.

export interface ProblemItem {
  pointer?: string;
  detail?: string;
  message?: string;
  errorCode?: string;
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errorCode?: string;
  message?: string;
  instance?: string;
  trace_id?: string;
  errors?: ProblemItem[];
}

/** Thrown by the API hooks for any non-2xx answer (and for network failures, with status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }

  /** The per-field problems (validation errors carry a JSON pointer into the request body). */
  get fieldErrors(): ProblemItem[] {
    return (this.problem.errors ?? []).filter((e) => typeof e.pointer === "string" && e.pointer !== "");
  }
}

export function isProblem(value: unknown): value is Problem {
  return typeof value === "object" && value !== null && ("title" in value || "detail" in value || "status" in value);
}

export function toApiError(status: number, body: unknown): ApiError {
  if (isProblem(body)) return new ApiError(status, body);
  return new ApiError(status, { status, title: `HTTP ${status}`, detail: typeof body === "string" ? body : undefined });
}

/**
 * The field errors whose pointer is `pointer` itself (exact) — what a field shows next to it.
 * Pointers are JSON pointers into the body sent (`/stages/0/mode_value`).
 */
export function errorsAt(error: unknown, pointer: string): string[] {
  if (!(error instanceof ApiError)) return [];
  return error.fieldErrors
    .filter((e) => e.pointer === pointer)
    .map((e) => e.detail ?? e.message ?? "invalid");
}

/** Field errors at or below `prefix` (a card can say "this stage has 2 problems"). */
export function errorsUnder(error: unknown, prefix: string): ProblemItem[] {
  if (!(error instanceof ApiError)) return [];
  return error.fieldErrors.filter((e) => e.pointer === prefix || (e.pointer ?? "").startsWith(prefix + "/"));
}
