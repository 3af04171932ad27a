// A loopback HTTP server for the tests: records every request with its whole body, answers as it
// is told. Closing it also ends connections still open (requests left unanswered on purpose).
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Receiver {
  url: string;
  got: Received[];
  close(): Promise<void>;
}

/** `answer` gets each request once its body has arrived (default: an empty 200). */
export async function startReceiver(answer: (req: Received, res: ServerResponse) => void = (_req, res) => res.end()): Promise<Receiver> {
  const got: Received[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      const received = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body };
      got.push(received);
      answer(received, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    got,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
