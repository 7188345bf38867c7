import { Autocomplete, Button, Center, MultiSelect, Paper, Stack, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { useNavigate, useSearch } from "@tanstack/react-router";
import { useState, type FormEvent } from "react";

import { signInMethod, useDevToken, useRuntimeConfig, type RuntimeConfig } from "../api/auth";
import { api, unwrap } from "../api/client";
import { ProblemAlert } from "../components/ProblemAlert";
import { LoadingState } from "../components/States";
import { startOidcSignIn } from "../lib/oidc";
import { ADMIN_ROLE, signIn, VIEWER_ROLE } from "../lib/session";

/** Where to go after signing in: only paths inside the admin UI (no open redirect). */
export function safeNext(next: string | undefined): string {
  if (!next) return "/";
  const path = next.startsWith("/admin") ? next.slice("/admin".length) || "/" : next;
  return path.startsWith("/") && !path.startsWith("//") ? path : "/";
}

export function SignInPage() {
  const config = useRuntimeConfig();
  return (
    <Center mih="100vh" p="md" component="main">
      <Paper withBorder shadow="sm" p="xl" radius="md" w="100%" maw={420}>
        <Stack>
          <Title order={1} size="h2">
            Sign in
          </Title>
          <Text c="dimmed" size="sm">
            Countersign admin
          </Text>
          {config.isPending && <LoadingState label="Loading configuration" />}
          {config.isError && <ProblemAlert error={config.error} title="The service could not be reached" />}
          {config.data && signInMethod(config.data) === "dev" && <DevSignIn />}
          {config.data && signInMethod(config.data) === "oidc" && <OidcSignIn config={config.data} />}
          {config.data && signInMethod(config.data) === "none" && (
            <ProblemAlert
              error={new Error("This service offers no way to sign in from the browser: dev tokens are off, or OIDC has no UI client (COUNTERSIGN_UI_CLIENT_ID).")}
              title="Sign-in is not configured"
            />
          )}
        </Stack>
      </Paper>
    </Center>
  );
}

/**
 * The directory's users for the Username picker. The picker endpoint needs a token, so in dev
 * mode (where anyone may mint one) the page asks for a read-only one first; free text always works.
 */
function useSignInUsers() {
  return useQuery({
    queryKey: ["sign-in", "users"],
    queryFn: async () => {
      const { access_token } = await unwrap(
        api.POST("/v1/dev/token", { body: { sub: "admin-ui-sign-in", roles: [VIEWER_ROLE] } }),
      );
      const users = await unwrap(
        api.GET("/v1/admin/directory/users", { headers: { Authorization: `Bearer ${access_token}` } }),
      );
      return users.map((u) => ({ value: u.user_id, label: u.name ? `${u.user_id}` : u.user_id, name: u.name ?? "" }));
    },
    retry: false,
    staleTime: 60_000,
  });
}

function DevSignIn() {
  const navigate = useNavigate();
  const { next } = useSearch({ from: "/sign-in" });
  const users = useSignInUsers();
  const token = useDevToken();
  const [username, setUsername] = useState("");
  const [roles, setRoles] = useState<string[]>([ADMIN_ROLE]);
  const [missing, setMissing] = useState(false);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const sub = username.trim();
    if (!sub) {
      setMissing(true);
      return;
    }
    token.mutate(
      { sub, roles },
      {
        onSuccess: (data) => {
          signIn(data.access_token);
          void navigate({ to: safeNext(next) });
        },
      },
    );
  };

  return (
    <form onSubmit={submit} noValidate>
      <Stack>
        <Text size="sm">Development mode: pick any user of the directory and the roles the token carries.</Text>
        <Autocomplete
          label="Username"
          placeholder="alice"
          data={(users.data ?? []).map((u) => u.value)}
          renderOption={({ option }) => {
            const name = users.data?.find((u) => u.value === option.value)?.name;
            return (
              <span>
                {option.value}
                {name && <Text span c="dimmed" size="xs">{` ${name}`}</Text>}
              </span>
            );
          }}
          value={username}
          onChange={(v) => {
            setUsername(v);
            setMissing(false);
          }}
          error={missing ? "Enter a username" : undefined}
          required
        />
        <MultiSelect
          label="Roles"
          data={[ADMIN_ROLE, VIEWER_ROLE]}
          value={roles}
          onChange={setRoles}
          placeholder={roles.length ? undefined : "none"}
          clearable
        />
        {token.isError && <ProblemAlert error={token.error} title="Could not sign in" />}
        <Button type="submit" loading={token.isPending}>
          Sign in
        </Button>
      </Stack>
    </form>
  );
}

function OidcSignIn({ config }: { config: RuntimeConfig }) {
  const { next } = useSearch({ from: "/sign-in" });
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Stack>
      <Text size="sm">You will be sent to {config.oidc?.issuer ?? "the identity provider"} to sign in.</Text>
      {error !== null && <ProblemAlert error={error} title="Could not start signing in" />}
      <Button
        loading={busy}
        onClick={() => {
          setBusy(true);
          startOidcSignIn(config, next).catch((e: unknown) => {
            setError(e);
            setBusy(false);
          });
        }}
      >
        Sign in
      </Button>
    </Stack>
  );
}
