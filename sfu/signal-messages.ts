/**
 * Messages of the browser <-> SFU signalling protocol (JSON text frames over
 * `/ws`, documented in sfu/README.md). The SFU is the only side that sends
 * SDP offers; the client only answers, so renegotiation never glares.
 */
import { type JsonLimits, parseBoundedJson } from "../protocol/bounded-json.ts";
import type { AppliedRef } from "./config-state.ts";
import type { SignalErrorCodeValue } from "./errors.ts";
import type { ClientIceServer } from "./ice-servers.ts";

/** Largest signalling frame accepted from a client, in bytes. */
export const MAX_SIGNAL_FRAME_BYTES = 256 * 1024;
/** Limits on one client frame: MAX_SIGNAL_FRAME_BYTES (an SDP answer is most of it), and a shallow object of a few fields. */
export const SIGNAL_JSON_LIMITS: Readonly<JsonLimits> = {
  maxBytes: MAX_SIGNAL_FRAME_BYTES,
  maxDepth: 8,
  maxValues: 1_000,
  maxKeys: 256,
};
/** Longest room or display name, in characters. */
export const MAX_NAME_LENGTH = 64;

/** What a client asks to publish. */
export interface PublishRequest {
  audio: boolean;
  video: boolean;
}

/** An ICE candidate as `RTCIceCandidate.toJSON()` writes it; null = end of candidates. */
export interface CandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** client -> SFU. */
export type ClientMessage =
  | { type: "join"; room: string; name: string; publish: PublishRequest }
  | { type: "publish"; publish: PublishRequest }
  | { type: "answer"; sdp: string }
  | { type: "candidate"; candidate: CandidateInit | null }
  | { type: "leave" };

/** A participant as other participants see it. */
export interface ParticipantInfo {
  id: string;
  name: string;
  tracks: TrackInfo[];
}

/** A published track as other participants see it. */
export interface TrackInfo {
  id: string;
  participantId: string;
  kind: "audio" | "video";
  codec: string;
}

/** SFU -> client. */
export type ServerMessage =
  | {
      type: "joined";
      id: string;
      room: string;
      iceServers: readonly ClientIceServer[];
      participants: ParticipantInfo[];
      config: AppliedRef | null;
    }
  | {
      type: "offer";
      sdp: string;
      /** mids of m-lines the client should send its own media on, by kind. */
      publish: { mid: string; kind: "audio" | "video" }[];
      /** mid -> the remote track that m-line carries. */
      tracks: Record<string, TrackInfo>;
    }
  | { type: "candidate"; candidate: CandidateInit | null }
  | { type: "participant-joined"; participant: ParticipantInfo }
  | { type: "participant-left"; id: string }
  | { type: "track-published"; track: TrackInfo }
  | { type: "config"; config: AppliedRef | null }
  | { type: "error"; code: SignalErrorCodeValue; message: string }
  | { type: "left" };

/** Result of parsing a client frame. */
export type ParseResult = { ok: true; message: ClientMessage } | { ok: false; message: string };

function isName(v: unknown): v is string {
  return typeof v === "string" && v.trim().length > 0 && v.length <= MAX_NAME_LENGTH && !/[\u0000-\u001f]/.test(v);
}

function parsePublish(v: unknown, fallback: PublishRequest): PublishRequest | null {
  if (v === undefined) return fallback;
  if (typeof v !== "object" || v === null) return null;
  const { audio, video } = v as Record<string, unknown>;
  if ((audio !== undefined && typeof audio !== "boolean") || (video !== undefined && typeof video !== "boolean")) {
    return null;
  }
  return { audio: audio === true, video: video === true };
}

/** Parses and checks one client frame. Never throws. */
export function parseClientMessage(data: string): ParseResult {
  const parsed = parseBoundedJson(data, SIGNAL_JSON_LIMITS, "frame");
  if (!parsed.ok) {
    if (parsed.code === "TOO_LARGE") return { ok: false, message: "frame too large" };
    if (parsed.code === "BAD_JSON") return { ok: false, message: "frame is not JSON" };
    return { ok: false, message: parsed.message };
  }
  const v = parsed.value;
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { ok: false, message: "frame is not an object" };
  const m = v as Record<string, unknown>;
  switch (m.type) {
    case "join": {
      if (!isName(m.room))
        return { ok: false, message: `join.room must be 1..${MAX_NAME_LENGTH} printable characters` };
      if (!isName(m.name))
        return { ok: false, message: `join.name must be 1..${MAX_NAME_LENGTH} printable characters` };
      const publish = parsePublish(m.publish, { audio: true, video: true });
      if (!publish) return { ok: false, message: "join.publish must be {audio?: boolean, video?: boolean}" };
      return { ok: true, message: { type: "join", room: m.room, name: m.name.trim(), publish } };
    }
    case "publish": {
      const publish = parsePublish(m.publish, { audio: true, video: true });
      if (!publish) return { ok: false, message: "publish.publish must be {audio?: boolean, video?: boolean}" };
      return { ok: true, message: { type: "publish", publish } };
    }
    case "answer":
      if (typeof m.sdp !== "string" || m.sdp.length === 0) return { ok: false, message: "answer.sdp must be a string" };
      return { ok: true, message: { type: "answer", sdp: m.sdp } };
    case "candidate": {
      const c = m.candidate;
      if (c === null || c === undefined) return { ok: true, message: { type: "candidate", candidate: null } };
      if (typeof c !== "object" || typeof (c as { candidate?: unknown }).candidate !== "string") {
        return { ok: false, message: "candidate.candidate must be an RTCIceCandidateInit or null" };
      }
      return { ok: true, message: { type: "candidate", candidate: c as CandidateInit } };
    }
    case "leave":
      return { ok: true, message: { type: "leave" } };
    default:
      return { ok: false, message: `unknown message type ${JSON.stringify(m.type)}` };
  }
}
