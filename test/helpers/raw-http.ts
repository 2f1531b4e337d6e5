/**
 * Raw HTTP/1.1 over a loopback socket, for requests `http.request` will not
 * write (an absolute-form target with another `Host`, a hand-made WebSocket
 * upgrade): sends `text` as is and resolves with the response head (status
 * line and headers, lower-cased names), bounded by a timeout.
 */
import { connect } from "node:net";

/** A parsed response head. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  /** The head as received. */
  head: string;
}

/** Sends `text` to 127.0.0.1:`port` and waits for the response head (rejects after `timeoutMs`). */
export function rawRequest(port: number, text: string, timeoutMs = 5_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let data = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response head within ${timeoutMs} ms (got ${JSON.stringify(data.slice(0, 200))})`));
    }, timeoutMs);
    const done = (): boolean => {
      const end = data.indexOf("\r\n\r\n");
      if (end < 0) return false;
      clearTimeout(timer);
      socket.destroy();
      const head = data.slice(0, end);
      const [statusLine = "", ...lines] = head.split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(":");
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(" ")[1]), headers, head });
      return true;
    };
    socket.on("data", (d: Buffer) => {
      data += d.toString("latin1");
      done();
    });
    socket.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on("close", () => {
      if (!done()) {
        clearTimeout(timer);
        reject(new Error(`connection closed before a response head (got ${JSON.stringify(data.slice(0, 200))})`));
      }
    });
    socket.write(text);
  });
}
