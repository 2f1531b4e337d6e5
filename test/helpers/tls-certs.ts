/**
 * A test CA and server certificates made with the `openssl` CLI (EC P-256,
 * quick), for the HTTPS tests of `sfu-agent admission`. Each call writes PEM
 * files into the given directory and returns their paths and contents.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A PEM certificate and key, written to `certFile` and `keyFile`. */
export interface PemPair {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

async function openssl(args: string[]): Promise<void> {
  await run("openssl", args, { timeout: 20_000 });
}

/** A self-signed CA named `name` in `dir` (`<name>.crt`, `<name>.key`). */
export async function makeCa(dir: string, name = "ca"): Promise<PemPair> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    certFile,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { certFile, keyFile, cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") };
}

/**
 * A server certificate for `dnsNames` (and 127.0.0.1) signed by `ca`, as
 * `<name>.crt` / `<name>.key` in `dir`; `cn` tells certificates apart.
 */
export async function makeServerCert(
  dir: string,
  ca: PemPair,
  name: string,
  dnsNames: string[] = ["localhost"],
  cn = name,
): Promise<PemPair> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await writeFile(
    ext,
    `subjectAltName=${[...dnsNames.map((d) => `DNS:${d}`), "IP:127.0.0.1"].join(",")}\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    keyFile,
    "-out",
    csr,
    "-subj",
    `/CN=${cn}`,
  ]);
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca.certFile,
    "-CAkey",
    ca.keyFile,
    "-CAcreateserial",
    "-out",
    certFile,
    "-days",
    "1",
    "-extfile",
    ext,
  ]);
  return { certFile, keyFile, cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") };
}
