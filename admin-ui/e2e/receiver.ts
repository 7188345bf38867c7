// A webhook receiver on loopback for the end-to-end tests: records every call and answers with
// the status set for its path (204 unless told otherwise). Dev mode lets callbacks reach loopback.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedCall {
  path: string;
  eventType: string;
  requestId: string;
  answered: number;
  signed: boolean;
}

export class Receiver {
  readonly calls: ReceivedCall[] = [];
  private readonly replies = new Map<string, number>();
  private server: Server | null = null;
  private base = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void readBody(req).then((body) => {
        const path = (req.url ?? "/").split("?")[0] ?? "/";
        const status = this.replies.get(path) ?? 204;
        let parsed: { event_type?: string; request_id?: string } = {};
        try {
          parsed = JSON.parse(body) as typeof parsed;
        } catch {
          // recorded with empty fields; the test then fails on what it expected
        }
        this.calls.push({
          path,
          eventType: parsed.event_type ?? "",
          requestId: parsed.request_id ?? "",
          answered: status,
          signed: typeof req.headers["webhook-signature"] === "string" && typeof req.headers["x-approval-signature"] === "string",
        });
        res.writeHead(status, { "Content-Type": "text/plain" });
        res.end(status >= 400 ? `receiver says ${status}` : "");
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.base = `http://127.0.0.1:${port}`;
  }

  url(path: string): string {
    return `${this.base}${path}`;
  }

  /** From now on, calls to `path` get `status`. */
  reply(path: string, status: number): void {
    this.replies.set(path, status);
  }

  received(requestId: string, eventType: string): ReceivedCall[] {
    return this.calls.filter((c) => c.requestId === requestId && c.eventType === eventType);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
