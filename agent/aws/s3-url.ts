/** `s3://bucket/key` URLs of the rollout state (no AWS SDK import: option parsing uses it). */

/** Bucket and key of an `s3://bucket/key` URL. */
export interface S3Location {
  bucket: string;
  key: string;
}

/** Parses `s3://bucket/key`; returns an error message when malformed. */
export function parseS3Url(url: string): S3Location | string {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/.exec(url);
  if (!m) return `${JSON.stringify(url)} is not s3://BUCKET/KEY (bucket: 3-63 lowercase letters, digits, '.', '-')`;
  const key = m[2] as string;
  if (key.length > 1024) return `${JSON.stringify(url)}: the key is longer than 1024 bytes`;
  return { bucket: m[1] as string, key };
}
