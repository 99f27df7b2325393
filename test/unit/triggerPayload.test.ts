import { describe, expect, it } from "vitest";
import {
  clipIdsForPath,
  MAX_PAYLOAD_BYTES,
  parseTriggerPayload,
} from "../../src/serve/triggerPayload.js";

const EXT = [".mp4", ".avi", ".mkv", ".mov"];
const opts = { extensions: EXT };
const parse = (payload: string | Uint8Array, o: Parameters<typeof parseTriggerPayload>[1] = opts) =>
  parseTriggerPayload(typeof payload === "string" ? Buffer.from(payload) : payload, o);

describe("parseTriggerPayload", () => {
  it("takes an empty payload and a plain token as plain triggers", () => {
    for (const p of ["", "motion", "Camera1", "  event_end \n", "42", '"quoted"']) {
      expect(parse(p)).toEqual({ request: { origin: "mqtt" }, problems: [] });
    }
  });

  it("maps motioneye.sh's storage-command payload to the clip id, camera folder first", () => {
    const r = parse(
      JSON.stringify({
        camera: "Camera1",
        file: "/data/output/Camera1/2024-05-01/12-00-00.mp4",
        event: "movie_end",
        time: "2024-05-01T12:00:31Z",
      }),
    );
    expect(r.problems).toEqual([]);
    expect(r.camera).toBe("Camera1");
    expect(r.request).toEqual({
      origin: "mqtt",
      clipPaths: ["Camera1/2024-05-01/12-00-00.mp4", "2024-05-01/12-00-00.mp4"],
    });
  });

  it("takes the end-command payload (no file) as a plain trigger with its camera", () => {
    const r = parse('{"camera":"Front door","event":"event_end","time":"2024-05-01T12:00:31Z"}');
    expect(r).toEqual({ request: { origin: "mqtt" }, camera: "Front door", problems: [] });
  });

  it("maps motionEye's own layout and a relative path", () => {
    expect(clipIdsForPath("/var/lib/motioneye/Camera2/2024-12-31/23-59-59.mkv", opts)).toEqual({
      ids: ["Camera2/2024-12-31/23-59-59.mkv", "2024-12-31/23-59-59.mkv"],
    });
    expect(clipIdsForPath("2024-05-01/12-00-00.mp4", opts)).toEqual({
      ids: ["2024-05-01/12-00-00.mp4"],
    });
  });

  it("maps a file under a local media root exactly", () => {
    const o = { extensions: EXT, mediaRoot: "/srv/motioneye/" };
    expect(clipIdsForPath("/srv/motioneye/Cam A/2024-05-01/12-00-00.mp4", o)).toEqual({
      ids: ["Cam A/2024-05-01/12-00-00.mp4"],
    });
    expect(clipIdsForPath("/srv/motioneye/2024-05-01/12-00-00.mp4", o)).toEqual({
      ids: ["2024-05-01/12-00-00.mp4"],
    });
    // Deeper than the layout allows under the root: refused rather than guessed.
    expect(clipIdsForPath("/srv/motioneye/a/b/2024-05-01/12-00-00.mp4", o)).toHaveProperty(
      "problem",
    );
  });

  it("refuses traversal, paths outside a date folder and files that are not clips", () => {
    const refused = [
      "/data/output/../../etc/2024-05-01/x.mp4",
      "/data/output/Camera1/2024-05-01/../../../../etc/passwd",
      "../2024-05-01/x.mp4",
      "/data/output/Camera1/./2024-05-01/x.mp4",
      "/etc/passwd",
      "/tmp/evil.mp4",
      "/data/output/Camera1/2024-13-45/12-00-00.mp4",
      "/data/output/Camera1/2024-05-01/12-00-00.mp4.thumb",
      "/data/output/Camera1/2024-05-01/",
      "C:\\motion\\2024-05-01\\x.mp4",
      "/data/output/Camera1/2024-05-01/x\u0000.mp4",
      `/data/${"a".repeat(2000)}/2024-05-01/x.mp4`,
    ];
    for (const file of refused) {
      const r = parse(JSON.stringify({ camera: "Camera1", file }));
      expect(r.request, file).toEqual({ origin: "mqtt" });
      expect(r.problems, file).toHaveLength(1);
      expect(r.problems[0], file).toMatch(/^"file" ignored: /);
    }
  });

  it("treats wrong JSON types as a plain trigger, saying what was wrong", () => {
    const cases: Array<[string, RegExp]> = [
      ['{"camera":42,"file":["/a/2024-05-01/x.mp4"]}', /"camera" must be a string, not a number/],
      ['{"file":{"path":"/a/2024-05-01/x.mp4"}}', /"file" must be a string, not an object/],
      ['{"file":true}', /"file" must be a string, not a boolean/],
      ["[1,2,3]", /must be an object/],
      ["null", /^$/],
      ['{"camera":"Camera1","file":', /does not parse/],
      ["{not json}", /does not parse/],
    ];
    for (const [payload, problem] of cases) {
      const r = parse(payload);
      expect(r.request, payload).toEqual({ origin: "mqtt" });
      if (problem.source === "^$") expect(r.problems, payload).toEqual([]);
      else expect(r.problems.join("; "), payload).toMatch(problem);
    }
    // A null file or camera is simply absent.
    expect(parse('{"camera":null,"file":null}')).toEqual({
      request: { origin: "mqtt" },
      problems: [],
    });
  });

  it("treats binary and huge payloads as a plain trigger", () => {
    const binary = parse(Uint8Array.from([0xff, 0xfe, 0x00, 0x01, 0x80]));
    expect(binary.request).toEqual({ origin: "mqtt" });
    expect(binary.problems).toEqual(["payload is not UTF-8 text"]);

    const controls = parse(Buffer.from("\u0000\u0001\u0002motion"));
    expect(controls.request).toEqual({ origin: "mqtt" });
    expect(controls.problems[0]).toMatch(/control characters/);

    const huge = parse(
      JSON.stringify({ file: "/data/output/Camera1/2024-05-01/x.mp4", pad: "x".repeat(10_000) }),
    );
    expect(huge.request).toEqual({ origin: "mqtt" });
    expect(huge.problems[0]).toMatch(new RegExp(`too large \\(max ${MAX_PAYLOAD_BYTES}\\)`));
  });

  it("makes camera and file safe to log", () => {
    const r = parse(
      JSON.stringify({ camera: `Cam\u001b[31m${"x".repeat(500)}`, file: "/tmp/\u001b[2Jx" }),
    );
    expect(r.camera?.includes("\u001b")).toBe(false);
    expect(r.camera?.length).toBeLessThanOrEqual(120);
    expect(r.file).toBe("/tmp/?[2Jx");
    expect(r.request).toEqual({ origin: "mqtt" });
  });

  it("accepts a UTF-8 byte order mark and non-ASCII camera names", () => {
    const r = parse(
      Buffer.concat([
        Buffer.from([0xef, 0xbb, 0xbf]),
        Buffer.from(JSON.stringify({ camera: "Café", file: "/m/Café/2024-05-01/1.mp4" })),
      ]),
    );
    expect(r.problems).toEqual([]);
    expect(r.request.clipPaths?.[0]).toBe("Café/2024-05-01/1.mp4");
  });
});
