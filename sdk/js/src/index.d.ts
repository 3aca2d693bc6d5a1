// Declarations of @belfry/plugin-sdk's helpers (src/*.js). The contract's own types are
// generated into types/<world>/ by `npm run types` (scripts/types.mjs).

export type FieldType = 'string' | 'number' | 'boolean' | 'object' | 'array' | 'any';

export class PayloadError extends Error {
  readonly field: string;
  constructor(field: string, message: string);
}
export function parsePayload(json: string): Record<string, unknown>;
export function field(obj: unknown, path: string, type: 'string', opts?: { optional?: false; prefix?: string }): string;
export function field(obj: unknown, path: string, type: 'number', opts?: { optional?: false; prefix?: string }): number;
export function field(obj: unknown, path: string, type: 'boolean', opts?: { optional?: false; prefix?: string }): boolean;
export function field(obj: unknown, path: string, type: 'array', opts?: { optional?: false; prefix?: string }): unknown[];
export function field(obj: unknown, path: string, type: 'object', opts?: { optional?: false; prefix?: string }): Record<string, unknown>;
export function field(obj: unknown, path: string, type?: FieldType, opts?: { optional?: boolean; prefix?: string }): any;

export type PlanError = { tag: 'invalid-payload'; val: string } | { tag: 'failed'; val: string };
export function planError(e: unknown): PlanError;
export function withPlanErrors<T extends Record<string, (...args: any[]) => any>>(exports: T): T;

export function utf8(s: string | Uint8Array): Uint8Array;
export function sha256(data: string | Uint8Array): Uint8Array;
export function hmacSha256(key: string | Uint8Array, message: string | Uint8Array): Uint8Array;

export const TOLERANCE_MS: number;
export class SignatureError extends Error {}
export function base64Encode(bytes: Uint8Array): string;
export function base64Decode(text: string): Uint8Array;
export function hex(bytes: Uint8Array): string;
export function timingSafeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean;
export function header(headers: Array<[string, string]>, name: string): string | undefined;
export function checkTimestamp(timestampMs: number, receivedAtMs: number | bigint, toleranceMs?: number): void;
export function verifyHmacSha256Hex(secret: string | Uint8Array, body: string | Uint8Array, signatureHex: string | undefined): void;
export interface SignedRequest {
  headers: Array<[string, string]>;
  body: Uint8Array | string;
  receivedAtMs: number | bigint;
}
export function verifyStandardWebhook(secret: string, request: SignedRequest, toleranceMs?: number): string;

export function readText(read: (path: string) => Uint8Array | undefined, path: string): string | undefined;
