/**
 * fauxqs (a real SNS+SQS server on the AWS wire protocol) in-process for the
 * local stack (`npm start`), the tests and the benchmarks, bound to 127.0.0.1
 * only. fauxqs's own `startFauxqs` listens on 0.0.0.0, so this builds its
 * Fastify app with `buildApp` and listens on loopback itself.
 *
 * State is in memory: `stop()` + `restart()` on the same port is an outage
 * that also loses every queue, topic and subscription (clients must
 * re-provision, the test re-creates its topics).
 *
 * @example
 * const fx = await startFauxqs();
 * const clients = fx.clients({ onCall: (action) => seen.add(action) });
 * clients.destroy();
 * await fx.stop();
 */
import { CreateTopicCommand, SubscribeCommand } from "@aws-sdk/client-sns";
import { CreateQueueCommand, GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { buildApp } from "fauxqs";
import { type AwsClients, createAwsClients } from "../../agent/aws/aws-clients.ts";

/** Region fauxqs uses for ARNs and URLs. */
export const FAUXQS_REGION = "us-east-1";
/** Account id fauxqs puts in ARNs. */
export const FAUXQS_ACCOUNT = "000000000000";
/** Any credentials work; these keep the SDK from searching the default chain. */
export const FAUXQS_CREDENTIALS = { accessKeyId: "test", secretAccessKey: "test" } as const;

/** A running fauxqs. */
export interface FauxqsHandle {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  port: number;
  /** Stops the server (idempotent); state is lost. */
  stop(): Promise<void>;
  /** Starts a fresh (empty) server on the same port. */
  restart(): Promise<void>;
  /** ARN of a topic named `name` on this server. */
  topicArn(name: string): string;
  /**
   * SQS and SNS clients of this server (fauxqs region and credentials, no
   * call log file); `onCall` sees every `service:Action` they make. The
   * caller destroys them.
   */
  clients(options?: { onCall?: (action: string) => void }): AwsClients;
}

/** Starts fauxqs on 127.0.0.1 (port 0 = any free port). */
export async function startFauxqs(options: { port?: number } = {}): Promise<FauxqsHandle> {
  let app: ReturnType<typeof buildApp> | null = null;
  const listen = async (port: number): Promise<number> => {
    const a = buildApp({ logger: false, defaultRegion: FAUXQS_REGION });
    const address = await a.listen({ port, host: "127.0.0.1" });
    app = a;
    return Number(new URL(address).port);
  };
  const port = await listen(options.port ?? 0);
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    port,
    async stop() {
      const a = app;
      app = null;
      await a?.close();
    },
    async restart() {
      if (app) throw new Error("fauxqs is running");
      await listen(port);
    },
    topicArn: (name) => `arn:aws:sns:${FAUXQS_REGION}:${FAUXQS_ACCOUNT}:${name}`,
    clients: ({ onCall } = {}) =>
      createAwsClients({
        endpointUrl: endpoint,
        region: FAUXQS_REGION,
        credentials: FAUXQS_CREDENTIALS,
        callLogFile: null,
        ...(onCall ? { onCall } : {}),
      }),
  };
}

/** Names of {@link createHookTopics}'s topics and queue. */
export interface HookTopicNames {
  reload: string;
  status: string;
  statusQueue: string;
}

/**
 * Creates what the PostSync hook and the agents share: the reload topic, the
 * status topic, and the hook's status queue subscribed to the status topic
 * (raw delivery, as k8s/aws provisions it). Idempotent, like the AWS calls.
 */
export async function createHookTopics(
  clients: Pick<AwsClients, "sns" | "sqs">,
  names: HookTopicNames,
): Promise<{ topicArn: string; statusTopicArn: string; statusQueueUrl: string }> {
  const { sns, sqs } = clients;
  const topicArn = answered((await sns.send(new CreateTopicCommand({ Name: names.reload }))).TopicArn, "CreateTopic");
  const statusTopicArn = answered(
    (await sns.send(new CreateTopicCommand({ Name: names.status }))).TopicArn,
    "CreateTopic",
  );
  const statusQueueUrl = answered(
    (await sqs.send(new CreateQueueCommand({ QueueName: names.statusQueue }))).QueueUrl,
    "CreateQueue",
  );
  const statusQueueArn = answered(
    (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: statusQueueUrl, AttributeNames: ["QueueArn"] })))
      .Attributes?.QueueArn,
    "GetQueueAttributes (QueueArn)",
  );
  await sns.send(
    new SubscribeCommand({
      TopicArn: statusTopicArn,
      Protocol: "sqs",
      Endpoint: statusQueueArn,
      Attributes: { RawMessageDelivery: "true" },
    }),
  );
  return { topicArn, statusTopicArn, statusQueueUrl };
}

/** The value an AWS call must answer with; a clear error when it did not (never a guessed stand-in). */
function answered(value: string | undefined, call: string): string {
  if (!value) throw new Error(`fauxqs: ${call} answered without the value the local stack needs`);
  return value;
}
