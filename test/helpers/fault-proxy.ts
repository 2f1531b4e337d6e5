/**
 * A fault-injecting HTTP proxy for the fault suite: it listens on loopback
 * (port 0) in front of one upstream (fauxqs) and forwards every request,
 * unless the current rule says to fail it. Clients point their endpoint at
 * {@link FaultProxy.url}; each request is classified as `s3`, `sns` or `sqs`
 * (path-style S3 vs the SQS JSON target header vs the SNS query protocol),
 * so one proxy can fail one dependency while the others pass.
 *
 * Faults: `down` (the connection is reset, as an unreachable endpoint),
 * `hang` (accepted, never answered, until the client gives up), `slow` (forwarded
 * after a delay), `trickle` (the upstream answer, its body one small chunk per
 * interval), `status` (an answer with that status and a body of `bodyBytes`
 * filler, streamed: 500 with 50 MB costs the proxy nothing) and `garbage`
 * (200 with bytes that are not the protocol's) and `lost` (forwarded, so the
 * upstream acts on it, but its answer never reaches the client: the
 * connection is reset, as a partition right after a write).
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/** The dependency a request is for. */
export type FaultService = "s3" | "sns" | "sqs";

/** One request as the rule sees it. */
export interface FaultRequest {
  service: FaultService;
  method: string;
  path: string;
  /** The SQS/SNS action when known (from X-Amz-Target), else null. */
  action: string | null;
  /** The request body. */
  body: Buffer;
}

/** What to do with a request. */
export type Fault =
  | { kind: "down" }
  | { kind: "hang" }
  | { kind: "slow"; delayMs: number }
  | { kind: "trickle"; chunkBytes?: number; intervalMs: number }
  | { kind: "status"; status: number; bodyBytes?: number; headers?: Record<string, string>; body?: string }
  | { kind: "garbage"; bodyBytes?: number }
  | { kind: "lost" };

/** Decides per request: a fault, or null to forward it. */
export type FaultRule = (req: FaultRequest) => Fault | null;

/** Counts of what the proxy did. */
export interface FaultCounts {
  forwarded: number;
  failed: Record<Fault["kind"], number>;
}

/** A running proxy; see the module doc. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Sets the rule (null: forward everything). */
  setRule(rule: FaultRule | null): void;
  /** Fails every request of `service` with `fault` (null: that service passes again); other services keep their faults. */
  fail(service: FaultService, fault: Fault | null): void;
  /**
   * Calls `listener` with every request once its fate is decided (so a
   * listener that sets a fault affects the requests after this one); returns
   * a function that removes it.
   */
  onRequest(listener: (req: FaultRequest) => void): () => void;
  readonly counts: FaultCounts;
  stop(): Promise<void>;
}

/** Options of {@link startFaultProxy}. */
export interface FaultProxyOptions {
  /** Sees every request, its body and headers, before the rule (e.g. to count SQS deletes). */
  observe?: (req: FaultRequest, body: Buffer, headers: IncomingMessage["headers"]) => void;
}

/** Starts a proxy in front of `upstream` (an `http://host:port` URL). */
export async function startFaultProxy(upstream: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const target = new URL(upstream);
  const byService = new Map<FaultService, Fault>();
  let rule: FaultRule | null = null;
  const listeners = new Set<(req: FaultRequest) => void>();
  const counts: FaultCounts = {
    forwarded: 0,
    failed: { down: 0, hang: 0, slow: 0, trickle: 0, status: 0, garbage: 0, lost: 0 },
  };
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    how: { trickle?: { chunk: number; ms: number }; lose?: boolean } = {},
  ) => {
    const { trickle } = how;
    if (!how.lose) counts.forwarded++;
    const up = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (upRes) => {
        if (how.lose) {
          upRes.resume();
          upRes.on("end", () => req.socket.destroy());
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (!trickle) {
          upRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upRes.on("data", (c: Buffer) => chunks.push(c));
        upRes.on("end", () => {
          const all = Buffer.concat(chunks);
          let at = 0;
          const step = () => {
            if (res.destroyed) return;
            if (at >= all.length) return void res.end();
            res.write(all.subarray(at, at + trickle.chunk));
            at += trickle.chunk;
            later(trickle.ms, step);
          };
          step();
        });
      },
    );
    up.on("error", () => res.destroy());
    up.end(body);
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const info = classify(req, body);
      options.observe?.(info, body, req.headers);
      const fault = rule?.(info) ?? byService.get(info.service) ?? null;
      for (const listener of [...listeners]) listener(info);
      if (fault === null) return forward(req, res, body);
      counts.failed[fault.kind]++;
      switch (fault.kind) {
        case "down":
          req.socket.destroy();
          return;
        case "hang":
          return; // the socket stays open until the client aborts or the proxy stops
        case "slow":
          later(fault.delayMs, () => {
            if (!res.destroyed) forward(req, res, body);
          });
          return;
        case "trickle":
          forward(req, res, body, { trickle: { chunk: fault.chunkBytes ?? 16, ms: fault.intervalMs } });
          return;
        case "lost":
          forward(req, res, body, { lose: true });
          return;
        case "status":
        case "garbage": {
          const status = fault.kind === "status" ? fault.status : 200;
          const fixed = fault.kind === "status" && fault.body !== undefined ? Buffer.from(fault.body) : null;
          const total = fixed?.length ?? fault.bodyBytes ?? 256;
          res.writeHead(status, {
            "content-type": fault.kind === "status" ? "application/xml" : "application/octet-stream",
            "content-length": String(total),
            ...(fault.kind === "status" ? fault.headers : {}),
          });
          if (fixed) return void res.end(fixed);
          streamFiller(res, total, fault.kind === "garbage");
          return;
        }
      }
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    setRule(r) {
      rule = r;
    },
    fail(service, fault) {
      if (fault === null) byService.delete(service);
      else byService.set(service, fault);
    },
    onRequest(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function classify(req: IncomingMessage, body: Buffer): FaultRequest {
  const target = req.headers["x-amz-target"];
  const method = req.method ?? "GET";
  const path = req.url ?? "/";
  if (typeof target === "string" && target.startsWith("AmazonSQS.")) {
    return { service: "sqs", method, path, action: target.slice("AmazonSQS.".length), body };
  }
  if (method === "POST" && path === "/") {
    const action = /(?:^|&)Action=([A-Za-z]+)/.exec(body.toString("latin1"))?.[1] ?? null;
    if (action !== null && /QueueUrl=|QueueName=/.test(body.toString("latin1")))
      return { service: "sqs", method, path, action, body };
    return { service: "sns", method, path, action, body };
  }
  return { service: "s3", method, path, action: null, body };
}

/** Writes `total` bytes of filler (`x`, or random bytes for garbage) with back-pressure. */
function streamFiller(res: ServerResponse, total: number, random: boolean): void {
  const block = random ? randomBytes(64 * 1024) : Buffer.alloc(64 * 1024, 0x78);
  let left = total;
  const pump = () => {
    while (left > 0) {
      if (res.destroyed) return;
      const n = Math.min(left, block.length);
      left -= n;
      if (!res.write(block.subarray(0, n))) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  res.on("close", () => {
    left = 0;
  });
  pump();
}
