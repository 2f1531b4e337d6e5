/**
 * Rooms and admission. A {@link RoomRegistry} owns every room; a room owns
 * its participants and wires each published track to every other
 * participant. Limits come from the config snapshot current at join time.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { CodecName } from "../protocol/index.ts";
import type { CallHealth } from "./call-health.ts";
import type { ConfigState } from "./config-state.ts";
import { SignalErrorCode, type SignalErrorCodeValue } from "./errors.ts";
import { iceServersFor } from "./ice-servers.ts";
import { Participant, type PublishedTrack } from "./participant.ts";
import { codecNameOfMime } from "./peer-options.ts";
import type { PublishRequest, ServerMessage } from "./signal-messages.ts";

/** A room: participants keyed by id. */
export class Room {
  readonly name: string;
  readonly participants = new Map<string, Participant>();
  constructor(name: string) {
    this.name = name;
  }

  /** Sends `message` to every participant except `exceptId`. */
  broadcast(message: ServerMessage, exceptId?: string): void {
    for (const p of this.participants.values()) if (p.id !== exceptId) this.#sends.get(p.id)?.(message);
  }

  readonly #sends = new Map<string, (m: ServerMessage) => void>();
  /** @internal registers a participant with its send function. */
  add(p: Participant, send: (m: ServerMessage) => void): void {
    this.participants.set(p.id, p);
    this.#sends.set(p.id, send);
  }
  /** @internal */
  remove(id: string): void {
    this.participants.delete(id);
    this.#sends.delete(id);
  }

  /** Codecs currently published in the room. */
  publishedCodecs(): CodecName[] {
    const out = new Set<CodecName>();
    for (const p of this.participants.values()) {
      for (const t of p.published.values()) {
        const name = codecNameOfMime(t.codec.mimeType);
        if (name) out.add(name);
      }
    }
    return [...out];
  }
}

/** Input of {@link RoomRegistry.join}. */
export interface JoinRequest {
  room: string;
  name: string;
  publish: PublishRequest;
  /** Sends a signalling message to this client. Must not throw. */
  send: (message: ServerMessage) => void;
  /** Called when the SFU drops the participant on its own (failure, stop). */
  onDropped: (reason: string) => void;
}

/** Outcome of a join: the participant, or why not. */
export type JoinResult =
  | { ok: true; participant: Participant }
  | { ok: false; code: SignalErrorCodeValue; message: string };

/** Dependencies of {@link RoomRegistry}. */
export interface RoomRegistryOptions {
  logger: Logger;
  state: ConfigState;
  /** Answer timeout per offer (default 15 s). */
  answerTimeoutMs?: number;
  /** Minimum interval between keyframe requests to a publisher (default 500 ms). */
  keyframeIntervalMs?: number;
  /** Called after any join or leave (for gauges). */
  onChange?: () => void;
  /** Call-health counters to feed (joins, refusals, ICE outcomes). */
  health?: CallHealth;
  /** Passed to each participant (see ParticipantOptions.iceConnectTimeoutMs). */
  iceConnectTimeoutMs?: number;
}

/** Every room of this SFU. */
export class RoomRegistry {
  readonly rooms = new Map<string, Room>();
  readonly #options: RoomRegistryOptions;
  readonly #log: Logger;
  readonly #dropped = new Map<string, (reason: string) => void>();
  /** Counters of forwarders that have been closed, so totals never go backwards. */
  readonly #retired = { forwarded: 0, duplicates: 0, keyframeRequestsSent: 0 };

  constructor(options: RoomRegistryOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "rooms" });
  }

  /** Total participants over all rooms. */
  get participantCount(): number {
    let n = 0;
    for (const r of this.rooms.values()) n += r.participants.size;
    return n;
  }

  /**
   * Admits a participant: checks readiness and limits, creates its peer
   * connection under the current config, sends `joined`, subscribes it to
   * every track in the room and sends the first offer.
   */
  join(request: JoinRequest): JoinResult {
    const snapshot = this.#options.state.current;
    if (!snapshot)
      return {
        ok: false,
        code: SignalErrorCode.NOT_READY,
        message: "the SFU has no config applied yet; retry shortly",
      };
    const health = this.#options.health;
    health?.record("join", snapshot.hash);
    const { maxRooms, maxParticipantsPerRoom } = snapshot.config.limits;
    let room = this.rooms.get(request.room);
    if (!room && this.rooms.size >= maxRooms) {
      health?.record("joinFailure", snapshot.hash);
      return {
        ok: false,
        code: SignalErrorCode.ROOM_LIMIT,
        message: `this SFU already hosts ${this.rooms.size} rooms, the limit (limits.maxRooms = ${maxRooms})`,
      };
    }
    if (room && room.participants.size >= maxParticipantsPerRoom) {
      health?.record("joinFailure", snapshot.hash);
      return {
        ok: false,
        code: SignalErrorCode.PARTICIPANT_LIMIT,
        message: `room ${JSON.stringify(request.room)} is full: ${room.participants.size} participants (limits.maxParticipantsPerRoom = ${maxParticipantsPerRoom})`,
      };
    }
    if (!room) {
      room = new Room(request.room);
      this.rooms.set(room.name, room);
    }
    const theRoom = room;
    const extraCodecs = theRoom.publishedCodecs().filter((c) => !snapshot.config.webrtc.codecs.includes(c));
    const participant: Participant = new Participant({
      id: randomUUID(),
      name: request.name,
      room: theRoom.name,
      logger: this.#options.logger,
      snapshot,
      extraCodecs,
      send: request.send,
      answerTimeoutMs: this.#options.answerTimeoutMs,
      keyframeIntervalMs: this.#options.keyframeIntervalMs,
      iceConnectTimeoutMs: this.#options.iceConnectTimeoutMs,
      onHealth: (outcome) => health?.record(outcome, snapshot.hash),
      onTrackPublished: (track) => this.#onTrackPublished(theRoom, participant, track),
      onFailed: (reason) => {
        this.#log.warn({ participant: participant.id, reason }, "dropping participant");
        void this.leave(participant).then(() => this.#dropped.get(participant.id)?.(reason));
      },
    });
    const others = [...theRoom.participants.values()];
    theRoom.add(participant, request.send);
    this.#dropped.set(participant.id, request.onDropped);
    request.send({
      type: "joined",
      id: participant.id,
      room: theRoom.name,
      iceServers: iceServersFor(snapshot.turn, participant.id),
      participants: others.map((p) => p.info()),
      config: { version: snapshot.version, hash: snapshot.hash },
    });
    let changed = participant.requestPublish(request.publish);
    for (const other of others)
      for (const track of other.published.values()) changed = participant.subscribe(track) || changed;
    if (changed) void participant.negotiate();
    theRoom.broadcast({ type: "participant-joined", participant: participant.info() }, participant.id);
    this.#log.info({ participant: participant.id, room: theRoom.name, config: snapshot.version }, "participant joined");
    this.#options.onChange?.();
    return { ok: true, participant };
  }

  /** Asks for more publish slots after joining. */
  publish(participant: Participant, publish: PublishRequest): void {
    if (participant.requestPublish(publish)) void participant.negotiate();
  }

  #onTrackPublished(room: Room, publisher: Participant, track: PublishedTrack): void {
    for (const other of room.participants.values()) {
      if (other.id === publisher.id) continue;
      if (other.subscribe(track)) void other.negotiate();
    }
    room.broadcast({ type: "track-published", track: track.info }, publisher.id);
  }

  /** Removes a participant, tells the room, renegotiates subscribers and closes its peer connection. Idempotent. */
  async leave(participant: Participant): Promise<void> {
    const room = this.rooms.get(participant.room);
    this.#dropped.delete(participant.id);
    if (!room?.participants.has(participant.id)) {
      await participant.close();
      return;
    }
    room.remove(participant.id);
    for (const track of participant.published.values()) {
      track.forwarder.close();
      this.#retired.forwarded += track.forwarder.stats.forwarded;
      this.#retired.duplicates += track.forwarder.stats.duplicates;
      this.#retired.keyframeRequestsSent += track.forwarder.stats.keyframeRequestsSent;
    }
    for (const other of room.participants.values()) if (other.unsubscribeFrom(participant.id)) void other.negotiate();
    room.broadcast({ type: "participant-left", id: participant.id });
    if (room.participants.size === 0) this.rooms.delete(room.name);
    this.#options.onChange?.();
    this.#log.info({ participant: participant.id, room: room.name }, "participant left");
    await participant.close();
  }

  /** Closes every participant of every room. */
  async stop(): Promise<void> {
    const all = [...this.rooms.values()].flatMap((r) => [...r.participants.values()]);
    await Promise.all(all.map((p) => this.leave(p)));
  }

  /** Totals of forwarder counters since start (live tracks plus closed ones). */
  forwardingStats(): { forwarded: number; duplicates: number; keyframeRequestsSent: number } {
    const s = { ...this.#retired };
    for (const r of this.rooms.values()) {
      for (const p of r.participants.values()) {
        for (const t of p.published.values()) {
          s.forwarded += t.forwarder.stats.forwarded;
          s.duplicates += t.forwarder.stats.duplicates;
          s.keyframeRequestsSent += t.forwarder.stats.keyframeRequestsSent;
        }
      }
    }
    return s;
  }
}
