import { Center, Stack, Title } from "@mantine/core";
import { useNavigate } from "@tanstack/react-router";
import { useEffect, useState } from "react";

import { useRuntimeConfig } from "../api/auth";
import { ProblemAlert } from "../components/ProblemAlert";
import { LoadingState } from "../components/States";
import { finishOidcSignIn } from "../lib/oidc";
import { signIn } from "../lib/session";
import { safeNext } from "./SignInPage";

/** The OIDC redirect target: exchange the code (PKCE), keep the token, go where the user was. */
export function SignInCallbackPage() {
  const config = useRuntimeConfig();
  const navigate = useNavigate();
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (!config.data) return;
    let cancelled = false;
    finishOidcSignIn(config.data)
      .then(({ token, next }) => {
        if (cancelled) return;
        signIn(token);
        void navigate({ to: safeNext(next), replace: true });
      })
      .catch((e: unknown) => !cancelled && setError(e));
    return () => {
      cancelled = true;
    };
  }, [config.data, navigate]);

  return (
    <Center mih="100vh" component="main">
      <Stack maw={480}>
        <Title order={1} size="h2">
          Sign in
        </Title>
        {error !== null || config.isError ? (
          <ProblemAlert error={error ?? config.error} title="Signing in failed" />
        ) : (
          <LoadingState label="Signing in" />
        )}
      </Stack>
    </Center>
  );
}
