/**
 * The SDK's run-time lists of events and error codes against the protocol's own documents: the
 * schema the types are generated from, and the error table of docs/signaling.md.
 */

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { describe, expect, it } from "vitest";

import { SERVER_ERROR_CODES } from "../../src/errors.js";
import { CLIENT_EVENTS, SERVER_EVENTS } from "../../src/protocol.js";

const docs = (name: string) => readFileSync(fileURLToPath(new URL(`../../../docs/${name}`, import.meta.url)), "utf8");
const schema = JSON.parse(docs("signaling.schema.json")) as {
  clientEvents: Record<string, unknown>;
  serverEvents: Record<string, unknown>;
};

describe("the protocol lists", () => {
  it("name every client event of the schema", () => {
    expect([...CLIENT_EVENTS].sort()).toEqual(Object.keys(schema.clientEvents).sort());
  });

  it("name every server event of the schema", () => {
    expect([...SERVER_EVENTS].sort()).toEqual(Object.keys(schema.serverEvents).sort());
  });

  it("name every error code of docs/signaling.md", () => {
    const text = docs("signaling.md");
    const table = text.slice(text.indexOf("| error code | meaning |"));
    const codes: string[] = [];
    for (const line of table.split("\n").slice(2)) {
      if (!line.startsWith("|")) break;
      const code = /^\| `([a-z_]+)` \|/.exec(line)?.[1];
      if (code) codes.push(code);
    }
    expect(codes.length).toBeGreaterThan(10);
    expect([...SERVER_ERROR_CODES].sort()).toEqual(codes.sort());
  });
});
