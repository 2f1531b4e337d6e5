/** The import specifiers of a module's source, for the tests that check who imports what. */

/** Import specifiers of a module: static import/export ... from, side-effect imports, dynamic import(). */
export function importSpecifiers(source: string): string[] {
  const re =
    /(?:^|[\s;])(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']|(?:^|[\s;])import\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)/gm;
  return [...source.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3]!);
}
