/**
 * A preload (`node --import ./test/helpers/aws-sdk-trace.ts ...`) recording
 * which AWS SDK client packages the process resolves, by `import` or
 * `require`, through a module resolve hook. At exit it prints one line to
 * stderr, `AWS_SDK_LOADED ["@aws-sdk/client-sqs", ...]` (sorted). A preload
 * only: importing it registers the hook in the importing process.
 */
import { registerHooks } from "node:module";

const seen = new Set<string>();
registerHooks({
  resolve(specifier, context, next) {
    const resolved = next(specifier, context);
    const m = /\/node_modules\/(@aws-sdk\/client-[a-z0-9-]+)\//.exec(resolved.url);
    if (m?.[1]) seen.add(m[1]);
    return resolved;
  },
});
process.on("exit", () => {
  process.stderr.write(`AWS_SDK_LOADED ${JSON.stringify([...seen].sort())}\n`);
});
