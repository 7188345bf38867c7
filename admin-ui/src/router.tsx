// Every route of UI.md, registered once. Pages live in src/pages/ (one file each) and are filled in
// without touching this file; list pages get their filters from the query string (urlState.ts).
import type { QueryClient } from "@tanstack/react-query";
import {
  createRootRouteWithContext,
  createRoute,
  createRouter,
  Outlet,
  redirect,
  type RouterHistory,
} from "@tanstack/react-router";

import { AppLayout } from "./components/AppLayout";
import { canOperate, currentSession } from "./lib/session";
import { stringSearch } from "./lib/urlState";
import { AuditPage } from "./pages/AuditPage";
import { CallersPage } from "./pages/CallersPage";
import { DelegationsPage } from "./pages/DelegationsPage";
import { DeliveriesPage } from "./pages/DeliveriesPage";
import { NewPolicyPage } from "./pages/NewPolicyPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { PoliciesPage } from "./pages/PoliciesPage";
import { PolicyPage } from "./pages/PolicyPage";
import { PolicyVersionPage } from "./pages/PolicyVersionPage";
import { RequestPage } from "./pages/RequestPage";
import { RequestsPage } from "./pages/RequestsPage";
import { SignInCallbackPage } from "./pages/SignInCallbackPage";
import { SignInPage } from "./pages/SignInPage";
import { TasksPage } from "./pages/TasksPage";

export interface RouterContext {
  queryClient: QueryClient;
}

const rootRoute = createRootRouteWithContext<RouterContext>()({
  component: Outlet,
  notFoundComponent: NotFoundPage,
});

const signInRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "sign-in",
  validateSearch: (raw: Record<string, unknown>): { next?: string } =>
    typeof raw.next === "string" ? { next: raw.next } : {},
  component: SignInPage,
});

const signInCallbackRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "sign-in/callback",
  component: SignInCallbackPage,
});

/** Everything else needs a session; without one, go to sign-in and come back afterwards. */
const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: "app",
  beforeLoad: ({ location }) => {
    if (!currentSession()) {
      throw redirect({ to: "/sign-in", search: { next: location.href } });
    }
  },
  component: AppLayout,
});

const indexRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/",
  beforeLoad: () => {
    throw redirect({ to: canOperate(currentSession()) ? "/policies" : "/tasks" });
  },
});

const policiesRoute = createRoute({ getParentRoute: () => appRoute, path: "policies", component: PoliciesPage, validateSearch: stringSearch });
const newPolicyRoute = createRoute({ getParentRoute: () => appRoute, path: "policies/new", component: NewPolicyPage });
export const policyRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "policies/$key",
  validateSearch: stringSearch,
  component: PolicyPage,
});
export const policyVersionRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "policies/$key/versions/$version",
  validateSearch: stringSearch,
  component: PolicyVersionPage,
});
const requestsRoute = createRoute({ getParentRoute: () => appRoute, path: "requests", component: RequestsPage, validateSearch: stringSearch });
export const requestRoute = createRoute({ getParentRoute: () => appRoute, path: "requests/$id", component: RequestPage, validateSearch: stringSearch });
const tasksRoute = createRoute({ getParentRoute: () => appRoute, path: "tasks", component: TasksPage, validateSearch: stringSearch });
const deliveriesRoute = createRoute({ getParentRoute: () => appRoute, path: "deliveries", component: DeliveriesPage, validateSearch: stringSearch });
const callersRoute = createRoute({ getParentRoute: () => appRoute, path: "callers", component: CallersPage, validateSearch: stringSearch });
const delegationsRoute = createRoute({ getParentRoute: () => appRoute, path: "delegations", component: DelegationsPage, validateSearch: stringSearch });
const auditRoute = createRoute({ getParentRoute: () => appRoute, path: "audit", component: AuditPage, validateSearch: stringSearch });

export const routeTree = rootRoute.addChildren([
  signInRoute,
  signInCallbackRoute,
  appRoute.addChildren([
    indexRoute,
    policiesRoute,
    newPolicyRoute,
    policyRoute,
    policyVersionRoute,
    requestsRoute,
    requestRoute,
    tasksRoute,
    deliveriesRoute,
    callersRoute,
    delegationsRoute,
    auditRoute,
  ]),
]);

export function makeRouter(queryClient: QueryClient, history?: RouterHistory) {
  return createRouter({
    routeTree,
    basepath: "/admin",
    context: { queryClient },
    defaultPreload: "intent",
    scrollRestoration: true,
    ...(history ? { history } : {}),
  });
}

declare module "@tanstack/react-router" {
  interface Register {
    router: ReturnType<typeof makeRouter>;
  }
}
