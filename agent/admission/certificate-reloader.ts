/**
 * The webhook's serving certificate, kept in step with its files: each new
 * pair that loads is handed over, one that does not is refused. Its Secret
 * volume is swapped like the secrets directory of PROTOCOL.md
 * [section 18.1](../../protocol/PROTOCOL.md#181-the-secrets-directory).
 */

import { X509Certificate } from "node:crypto";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { dirname } from "node:path";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import type { Logger } from "pino";
import { AgentError } from "../shared/errors.ts";
import type { AdmissionMetrics } from "./metrics.ts";

/** Largest certificate (chain) or key file read, in bytes. */
export const MAX_TLS_FILE_BYTES = 256 * 1024;

/** Dependencies of {@link CertificateReloader}. */
export interface CertificateReloaderDeps {
  logger: Logger;
  metrics: AdmissionMetrics;
  /** Called with each new pair that loads (not with the first: {@link CertificateReloader.start} returns it). */
  onChange: (pair: TlsPair) => void;
}

/** Options of {@link CertificateReloader}. */
export interface CertificateReloaderOptions {
  certFile: string;
  keyFile: string;
  /** How often the files are read even without a change event (default {@link DEFAULT_TLS_POLL_MS}). */
  pollIntervalMs?: number;
  /** Wait after a change event before reading, so both files of a swap are read together (default {@link DEFAULT_TLS_SETTLE_MS}). */
  settleMs?: number;
}

/** A PEM certificate (chain) and its private key. */
export interface TlsPair {
  cert: Buffer;
  key: Buffer;
}

/** Default {@link CertificateReloaderOptions.pollIntervalMs}: 30 s, for volumes whose change events are missed. */
export const DEFAULT_TLS_POLL_MS = 30_000;

/** Default {@link CertificateReloaderOptions.settleMs}: 100 ms, enough for both files of one swap. */
export const DEFAULT_TLS_SETTLE_MS = 100;

/**
 * Watches a certificate + key pair and reports each new one that loads.
 *
 * The webhook's serving certificate, kept in step with its files. cert-manager
 * renews the certificate into a Secret; the kubelet swaps the mounted volume
 * by renaming its `..data` symlink (as for a ConfigMap), so both files change
 * at once. The reloader watches the files' directories (and polls, for
 * volumes whose events are missed), and hands every new, loadable
 * certificate + key pair to `onChange` (the server calls
 * `setSecureContext`: connections already open keep theirs, new handshakes
 * get the new one, nothing is dropped). A pair that does not load (half
 * written, mismatched key) is refused: the previous certificate stays in
 * use until a good pair appears.
 */
export class CertificateReloader {
  readonly #deps: CertificateReloaderDeps;
  readonly #opts: Required<CertificateReloaderOptions>;
  #current: TlsPair | null = null;
  /** The last pair refused, so a poll does not refuse (and count) the same files again. */
  #refused: TlsPair | null = null;
  #watchers: FSWatcher[] = [];
  #poll: NodeJS.Timeout | null = null;
  #settle: NodeJS.Timeout | null = null;

  constructor(deps: CertificateReloaderDeps, options: CertificateReloaderOptions) {
    this.#deps = deps;
    this.#opts = { pollIntervalMs: DEFAULT_TLS_POLL_MS, settleMs: DEFAULT_TLS_SETTLE_MS, ...options };
    if (!(this.#opts.pollIntervalMs > 0)) throw new RangeError("CertificateReloader: pollIntervalMs must be > 0");
  }

  /** Reads the pair (throws an {@link AgentError} `TLS_FILES` when it does not load), then starts watching; returns the pair. */
  start(): TlsPair {
    if (this.#current !== null) throw new Error("CertificateReloader: already started");
    const read = this.#read();
    if ("error" in read) throw new AgentError("TLS_FILES", read.error);
    const problem = this.#loadable(read);
    if (problem !== null)
      throw new AgentError("TLS_FILES", `${this.#opts.certFile} + ${this.#opts.keyFile}: ${problem}`);
    this.#current = read;
    this.#setExpiry(read.cert);
    for (const dir of new Set([dirname(this.#opts.certFile), dirname(this.#opts.keyFile)])) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#scheduleCheck());
        w.on("error", (err) =>
          this.#deps.logger.warn({ dir, err: err.message }, "certificate directory watch failed; polling"),
        );
        this.#watchers.push(w);
      } catch (err) {
        this.#deps.logger.warn({ dir, err: (err as Error).message }, "cannot watch the certificate directory; polling");
      }
    }
    this.#poll = setInterval(() => this.check(), this.#opts.pollIntervalMs);
    this.#poll.unref();
    return read;
  }

  /** Stops watching. */
  stop(): void {
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    if (this.#poll !== null) clearInterval(this.#poll);
    if (this.#settle !== null) clearTimeout(this.#settle);
    this.#poll = null;
    this.#settle = null;
  }

  /** Reads the files now; reports a changed pair that loads. Returns whether the served pair changed. */
  check(): boolean {
    if (this.#current === null) return false;
    const read = this.#read();
    if ("error" in read) {
      this.#deps.logger.warn({ err: read.error }, "serving certificate not reloaded; the previous one stays in use");
      return false;
    }
    if (same(read, this.#current) || (this.#refused !== null && same(read, this.#refused))) return false;
    const problem = this.#loadable(read);
    if (problem !== null) {
      this.#refused = read;
      this.#deps.metrics.certReloads.inc({ result: "failed" });
      this.#deps.logger.warn({ err: problem }, "new serving certificate does not load; the previous one stays in use");
      return false;
    }
    this.#current = read;
    this.#refused = null;
    const expiry = this.#setExpiry(read.cert);
    this.#deps.metrics.certReloads.inc({ result: "ok" });
    this.#deps.logger.info({ notAfter: expiry }, "serving certificate reloaded");
    this.#deps.onChange(read);
    return true;
  }

  #scheduleCheck(): void {
    if (this.#settle !== null || this.#current === null) return;
    this.#settle = setTimeout(() => {
      this.#settle = null;
      this.check();
    }, this.#opts.settleMs);
    this.#settle.unref();
  }

  #read(): TlsPair | { error: string } {
    const one = (path: string): Buffer | string => {
      try {
        const buf = readFileSync(path);
        return buf.length > MAX_TLS_FILE_BYTES ? `${path}: larger than ${MAX_TLS_FILE_BYTES} bytes` : buf;
      } catch (err) {
        return `${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      }
    };
    const cert = one(this.#opts.certFile);
    if (typeof cert === "string") return { error: cert };
    const key = one(this.#opts.keyFile);
    if (typeof key === "string") return { error: key };
    return { cert, key };
  }

  /** Null when the pair makes a TLS context (the key matches the certificate), else why not. */
  #loadable(pair: TlsPair): string | null {
    try {
      createSecureContext(pair as SecureContextOptions);
      new X509Certificate(pair.cert);
      return null;
    } catch (err) {
      // OpenSSL's message names what is wrong (no PEM, key mismatch); it never contains key material.
      return (err as Error).message;
    }
  }

  #setExpiry(cert: Buffer): string | null {
    try {
      const x = new X509Certificate(cert);
      this.#deps.metrics.certExpiry.set(Date.parse(x.validTo) / 1000);
      return new Date(Date.parse(x.validTo)).toISOString();
    } catch {
      return null;
    }
  }
}

function same(a: TlsPair, b: TlsPair): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key);
}
