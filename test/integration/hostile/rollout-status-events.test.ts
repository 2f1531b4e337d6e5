/**
 * Hostile messages on the status queue the rollout driver (`sfu-agent
 * rollout`) reads its pods' status and health events from: bodies nested
 * deep, key and value floods, huge strings, the same inside SNS envelopes,
 * and 2,000 malformed events, queued before a progressive rollout starts.
 * The driver and the agents run in-process (test/integration/rollout/fleet.ts);
 * what each message may cost is bounded by the same reader the process
 * tests of this folder run under the containers' limits.
 *
 * The rollout completes (exit 0, state complete, every pod on the new hash)
 * and every hostile message is deleted, none quoted in the output. (Before
 * the fix in agent/hook/driver-events.ts a receive of junk slept the rest
 * of the state-check interval, and this backlog halted the rollout at its
 * first step: "0/2 reported" after 60 s, against 6 s without the junk.)
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GetQueueAttributesCommand, SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import { type Fleet, hashOf, startFleet } from "../rollout/fleet.ts";

const FLOOD = 2_000;

describe("the rollout driver vs hostile messages on its status queue", { timeout: 3 * 60_000 }, () => {
  let fleet: Fleet;

  before(async () => {
    fleet = await startFleet({ names: ["sfu-a", "sfu-b"], initial: 1 });
  });

  after(async () => {
    await fleet?.dispose();
  });

  test("the rollout completes; every hostile message is deleted and quoted nowhere", async () => {
    const first = await fleet.rollout(1);
    assert.equal(first.code, 0, first.stderr);
    const { f } = fleet;
    const envelope = (m: string) => JSON.stringify({ Type: "Notification", MessageId: "m", Message: m });
    const hostile = [
      `${"[".repeat(120_000)}${"]".repeat(120_000)}`,
      `{${Array.from({ length: 20_000 }, (_, i) => `"k${i}":"FILLER"`).join(",")}}`.slice(0, 250_000),
      `[${"0,".repeat(120_000)}0]`,
      envelope(`${"[".repeat(60_000)}${"]".repeat(60_000)}`),
      JSON.stringify({ type: "sfu-config.status", pod: "sfu-a", p: "FILLER".repeat(40_000) }),
    ];
    const flood = Array.from(
      { length: FLOOD },
      (_, i) => `{"type":"sfu-config.health","n":${i},"FILLER":[[[[[[[[[[0]]]]]]]]]]}`,
    );
    const bodies = [...hostile, ...flood];
    for (let i = 0; i < bodies.length; ) {
      const n = (bodies[i] as string).length > 10_000 ? 1 : 10;
      const entries = bodies.slice(i, i + n).map((MessageBody, k) => ({ Id: `m${k}`, MessageBody }));
      i += n;
      await f.clients.sqs.send(new SendMessageBatchCommand({ QueueUrl: f.statusQueueUrl, Entries: entries }));
    }
    const t0 = performance.now();
    const pending = fleet.rollout(2);
    await fleet.mount(2);
    const run = await pending;
    const seconds = (performance.now() - t0) / 1000;
    console.log(`# rollout through ${bodies.length} hostile messages: ${seconds.toFixed(1)} s`);
    assert.equal(run.code, 0, `exit code: ${run.stderr.slice(-1500)} stdout: ${run.stdout.slice(-1500)}`);
    assert.ok(!`${run.stdout}${run.stderr}`.includes("FILLER"), "the output quotes no body");
    const hash = await hashOf(2);
    const state = await fleet.state.read();
    assert.equal(state?.stable?.hash, hash, "the new config is stable");
    assert.equal(state?.candidate?.state, "complete");
    for (const pod of fleet.pods) assert.equal(pod.applied(), hash, `${pod.name} runs the new config`);
    const a = await f.clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: f.statusQueueUrl,
        AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
      }),
    );
    const left =
      Number(a.Attributes?.ApproximateNumberOfMessages) + Number(a.Attributes?.ApproximateNumberOfMessagesNotVisible);
    assert.ok(left < hostile.length, `${left} messages left on the status queue: the hostile ones were not deleted`);
  });
});
