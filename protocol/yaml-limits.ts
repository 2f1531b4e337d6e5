/**
 * The limits on reading a YAML config (see yaml-document.ts): each bounds the
 * time or memory one file can cost, whatever its shape.
 */

/** Deepest nesting of lists and mappings accepted. */
export const MAX_YAML_DEPTH = 64;
/** Most YAML nodes (keys, values, list items; aliases counted at their expanded size) accepted. */
export const MAX_YAML_NODES = 100_000;
/** Most mapping keys in one file; keys past it are not read (and the file is refused). */
export const MAX_YAML_KEYS = 10_000;
/**
 * Most bytes of scalar text (UTF-8 of every string, number, boolean and
 * mapping key) after alias expansion, each alias counted at its anchor's
 * expanded size. Twice the file limit: a file without aliases never reaches
 * it, and what the value costs downstream (its schema checks, its canonical
 * JSON) grows with this text, not with its node count.
 */
export const MAX_YAML_EXPANDED_BYTES = 2 * 1024 * 1024;
/** Most alias uses (`*name`) in one file. */
export const MAX_YAML_ALIASES = 100;
/**
 * Most YAML tokens parsed: scalars, aliases, anchors, tags and the indicators
 * `-` `?` `:` `,` count 1, flow brackets `[` `{` 3, and spaces, line breaks
 * and comments a quarter. Bounds the parse tree held in memory (and the parse
 * time) before the node count can be known.
 */
export const MAX_YAML_TOKENS = 30_000;

/** The problem text of nesting past MAX_YAML_DEPTH. */
export const DEPTH_MESSAGE = `YAML: nested more than ${MAX_YAML_DEPTH} levels deep`;
