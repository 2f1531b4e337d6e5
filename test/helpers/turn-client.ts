/**
 * A minimal STUN/TURN client over UDP for tests (RFC 5389 / RFC 5766): a
 * Binding request (is the server up?) and an Allocate with the long-term
 * credential mechanism (does the server accept this username/password?).
 * It speaks the wire format directly, so a test learns what the TURN server
 * itself decided, not what a WebRTC stack made of it.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";

const MAGIC_COOKIE = 0x2112a442;
const ALLOCATE_REQUEST = 0x0003;
const ALLOCATE_SUCCESS = 0x0103;
const ALLOCATE_ERROR = 0x0113;
const ATTR = {
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  REALM: 0x0014,
  NONCE: 0x0015,
  REQUESTED_TRANSPORT: 0x0019,
  XOR_RELAYED_ADDRESS: 0x0016,
  LIFETIME: 0x000d,
} as const;

interface StunMessage {
  type: number;
  transactionId: Buffer;
  attrs: Map<number, Buffer>;
}

function encode(type: number, transactionId: Buffer, attrs: [number, Buffer][], integrityKey?: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const [t, v] of attrs) {
    const header = Buffer.alloc(4);
    header.writeUInt16BE(t, 0);
    header.writeUInt16BE(v.length, 2);
    parts.push(header, v, Buffer.alloc((4 - (v.length % 4)) % 4));
  }
  let body = Buffer.concat(parts);
  const head = (length: number) => {
    const h = Buffer.alloc(20);
    h.writeUInt16BE(type, 0);
    h.writeUInt16BE(length, 2);
    h.writeUInt32BE(MAGIC_COOKIE, 4);
    transactionId.copy(h, 8);
    return h;
  };
  if (integrityKey) {
    // The HMAC covers the header with a length that already counts MESSAGE-INTEGRITY (24 bytes).
    const hmac = createHmac("sha1", integrityKey)
      .update(Buffer.concat([head(body.length + 24), body]))
      .digest();
    const mi = Buffer.alloc(4);
    mi.writeUInt16BE(ATTR.MESSAGE_INTEGRITY, 0);
    mi.writeUInt16BE(20, 2);
    body = Buffer.concat([body, mi, hmac]);
  }
  return Buffer.concat([head(body.length), body]);
}

function decode(buf: Buffer): StunMessage | null {
  if (buf.length < 20 || buf.readUInt32BE(4) !== MAGIC_COOKIE) return null;
  const length = buf.readUInt16BE(2);
  if (buf.length < 20 + length) return null;
  const attrs = new Map<number, Buffer>();
  let off = 20;
  while (off + 4 <= 20 + length) {
    const t = buf.readUInt16BE(off);
    const l = buf.readUInt16BE(off + 2);
    if (off + 4 + l > buf.length) break;
    if (!attrs.has(t)) attrs.set(t, buf.subarray(off + 4, off + 4 + l));
    off += 4 + l + ((4 - (l % 4)) % 4);
  }
  return { type: buf.readUInt16BE(0), transactionId: buf.subarray(8, 20), attrs };
}

/** Sends `request` on `socket` to 127.0.0.1:`port` (resent every 200 ms) and resolves with the matching response; rejects after `timeoutMs`. */
async function transactOn(socket: Socket, port: number, request: Buffer, timeoutMs: number): Promise<StunMessage> {
  const tid = request.subarray(8, 20);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let resend: ReturnType<typeof setInterval> | undefined;
  let onMessage: ((msg: Buffer) => void) | undefined;
  let onError: ((err: Error) => void) | undefined;
  try {
    return await new Promise<StunMessage>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no STUN answer from 127.0.0.1:${port} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      onError = reject;
      onMessage = (msg) => {
        const m = decode(msg);
        if (m?.transactionId.equals(tid)) resolve(m);
      };
      socket.on("error", onError);
      socket.on("message", onMessage);
      const send = () => socket.send(request, port, "127.0.0.1");
      send();
      resend = setInterval(send, 200);
    });
  } finally {
    clearTimeout(timer);
    clearInterval(resend);
    if (onMessage) socket.off("message", onMessage);
    if (onError) socket.off("error", onError);
  }
}

export { stunBindingAnswered } from "../../scripts/local/coturn.ts";

/** What a TURN server answered to an authenticated Allocate. */
export type AllocateResult =
  | { ok: true; relayedPort: number; lifetime: number }
  | { ok: false; status: number; reason: string };

/**
 * Tries a UDP Allocate on 127.0.0.1:`port` with `username`/`password` (the
 * long-term credential mechanism: a first unauthenticated request fetches
 * REALM and NONCE from the 401, the second carries MESSAGE-INTEGRITY keyed
 * with MD5(username:realm:password)). Resolves with the server's decision.
 */
export async function tryAllocate(
  port: number,
  username: string,
  password: string,
  timeoutMs = 2000,
): Promise<AllocateResult> {
  const transport = Buffer.from([17, 0, 0, 0]); // UDP
  // One socket for both requests: the server ties its NONCE to the client's address and port.
  const socket = createSocket("udp4");
  try {
    return await allocateOn(socket, port, username, password, transport, timeoutMs);
  } finally {
    socket.close();
  }
}

async function allocateOn(
  socket: Socket,
  port: number,
  username: string,
  password: string,
  transport: Buffer,
  timeoutMs: number,
): Promise<AllocateResult> {
  const first = await transactOn(
    socket,
    port,
    encode(ALLOCATE_REQUEST, randomBytes(12), [[ATTR.REQUESTED_TRANSPORT, transport]]),
    timeoutMs,
  );
  const realm = first.attrs.get(ATTR.REALM);
  const nonce = first.attrs.get(ATTR.NONCE);
  if (first.type !== ALLOCATE_ERROR || !realm || !nonce) {
    throw new Error(`expected a 401 with REALM and NONCE first, got type 0x${first.type.toString(16)}`);
  }
  const key = createHash("md5")
    .update(`${username}:${realm.toString("utf8")}:${password}`)
    .digest();
  const second = await transactOn(
    socket,
    port,
    encode(
      ALLOCATE_REQUEST,
      randomBytes(12),
      [
        [ATTR.REQUESTED_TRANSPORT, transport],
        [ATTR.USERNAME, Buffer.from(username, "utf8")],
        [ATTR.REALM, realm],
        [ATTR.NONCE, nonce],
      ],
      key,
    ),
    timeoutMs,
  );
  if (second.type === ALLOCATE_SUCCESS) {
    const relayed = second.attrs.get(ATTR.XOR_RELAYED_ADDRESS);
    const lifetime = second.attrs.get(ATTR.LIFETIME);
    return {
      ok: true,
      relayedPort: relayed ? relayed.readUInt16BE(2) ^ (MAGIC_COOKIE >>> 16) : 0,
      lifetime: lifetime ? lifetime.readUInt32BE(0) : 0,
    };
  }
  const err = second.attrs.get(ATTR.ERROR_CODE);
  if (second.type !== ALLOCATE_ERROR || !err) {
    throw new Error(`unexpected TURN answer type 0x${second.type.toString(16)}`);
  }
  return { ok: false, status: err.readUInt8(2) * 100 + err.readUInt8(3), reason: err.subarray(4).toString("utf8") };
}
