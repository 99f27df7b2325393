import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isLoopbackHost } from "../../src/config/http.js";
import { ConfigError, loadConfig } from "../../src/config/load.js";

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

// A fresh folder: no config.yml there to be found.
const load = (env: Record<string, string>) =>
  loadConfig({ cwd: mkdtempSync(join(tmpdir(), "mev-http-config-")), env });

describe("http config", () => {
  it("listens on 127.0.0.1:8099 by default, with no token", () => {
    expect(load({}).config.http).toEqual({ host: "127.0.0.1", port: 8099 });
  });

  it("needs a token when the host is not a loopback address, naming http.token", () => {
    for (const host of ["0.0.0.0", "::", "192.168.1.10", "vault.example"]) {
      expect(problemsOf(() => load({ MOTIONEYE_VAULT_HTTP_HOST: host }))).toEqual([
        `http.token: is required when http.host (${host}) is not a loopback address: set http.token or http.tokenFile, or keep host 127.0.0.1`,
      ]);
    }
    const withToken = load({
      MOTIONEYE_VAULT_HTTP_HOST: "0.0.0.0",
      MOTIONEYE_VAULT_HTTP_TOKEN: "t0k",
    });
    expect(withToken.config.http).toEqual({ host: "0.0.0.0", port: 8099, token: "t0k" });
    // Disabled: no listener, nothing to protect.
    expect(
      load({ MOTIONEYE_VAULT_HTTP_HOST: "0.0.0.0", MOTIONEYE_VAULT_HTTP_PORT: "0" }).config.http
        .port,
    ).toBe(0);
  });

  it("reads the token from tokenFile, and refuses one that a URL would mangle", () => {
    const d = mkdtempSync(join(tmpdir(), "mev-http-config-"));
    writeFileSync(join(d, "token"), "0123abcd\n");
    writeFileSync(join(d, "config.yml"), "http:\n  host: 0.0.0.0\n  tokenFile: token\n");
    expect(loadConfig({ file: join(d, "config.yml"), env: {} }).config.http.token).toBe("0123abcd");
    expect(problemsOf(() => load({ MOTIONEYE_VAULT_HTTP_TOKEN: "a+b/c=" }))[0]).toMatch(
      /^http\.token: must not contain spaces or any of % & # \+/,
    );
    expect(problemsOf(() => load({ MOTIONEYE_VAULT_HTTP_PORT: "70000" }))[0]).toMatch(
      /^http\.port: /,
    );
  });

  it("knows loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]", "0:0:0:0:0:0:0:1"]) {
      expect(isLoopbackHost(h), h).toBe(true);
    }
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "localhost.example.com", "::2"]) {
      expect(isLoopbackHost(h), h).toBe(false);
    }
  });
});
