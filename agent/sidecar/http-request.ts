/**
 * One bounded HTTP exchange for the HTTP push adapter, with every expected
 * failure as a returned value (never a throw): a response (any status, its
 * body capped), a timeout (the whole exchange, connect to last byte, took
 * longer than `timeoutMs`), or unreachable (refused, reset, DNS, TLS).
 * A fresh connection per request (no keep-alive pool): pushes are rare, and
 * nothing lingers to keep the process alive after stop. Redirects are not
 * followed (a 3xx is just a status).
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/** What one exchange ended with. */
export type ExchangeResult =
  | { kind: "response"; status: number; body: Buffer }
  | { kind: "timeout" }
  | { kind: "unreachable"; error: string };

/** One request. */
export interface ExchangeRequest {
  url: URL;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  timeoutMs: number;
  /** Response bytes kept; the rest is read and dropped. */
  maxBodyBytes: number;
  /** Aborts the exchange (it then resolves as unreachable "aborted"). */
  signal?: AbortSignal;
}

/** Runs one exchange; resolves exactly once, never rejects. */
export function exchange(req: ExchangeRequest): Promise<ExchangeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ExchangeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.signal?.removeEventListener("abort", onAbort);
      resolve(r);
    };
    const send = req.url.protocol === "https:" ? httpsRequest : httpRequest;
    const headers: Record<string, string> = { ...req.headers, connection: "close" };
    if (req.body !== undefined) headers["content-length"] = String(Buffer.byteLength(req.body, "utf8"));
    const r = send(req.url, { method: req.method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on("data", (c: Buffer) => {
        if (kept >= req.maxBodyBytes) return;
        const part = c.subarray(0, req.maxBodyBytes - kept);
        chunks.push(part);
        kept += part.length;
      });
      res.on("end", () => finish({ kind: "response", status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on("error", (err) => finish({ kind: "unreachable", error: describe(err) }));
    });
    const timer = setTimeout(() => {
      finish({ kind: "timeout" });
      r.destroy();
    }, req.timeoutMs);
    const onAbort = () => {
      finish({ kind: "unreachable", error: "aborted" });
      r.destroy();
    };
    if (req.signal?.aborted) onAbort();
    else req.signal?.addEventListener("abort", onAbort, { once: true });
    r.on("error", (err) => finish({ kind: "unreachable", error: describe(err) }));
    r.end(req.body);
  });
}

/** A short, credential-free description of a socket error (its code, else its message). */
function describe(err: NodeJS.ErrnoException): string {
  return err.code ?? err.message;
}
