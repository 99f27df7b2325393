import { describe, expect, it } from "vitest";
import {
  clipIdsForPath,
  MAX_PAYLOAD_BYTES,
  parseTriggerFields,
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
    expect(r).toEqual({
      request: { origin: "mqtt" },
      camera: "Front door",
      event: "event_end",
      problems: [],
    });
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
      "/tmp/evil.mp4",
      "/data/output/Camera1/2024-13-45/12-00-00.mp4",
      "C:\\motion\\2024-05-01\\x.mp4",
      "/data/output/Camera1/2024-05-01/x\u0000.mp4",
      "/data/output/Camera1/2024-05-01/../../x.jpg",
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

describe("pictures and other files that are not clips", () => {
  const fields = (f: Record<string, unknown>, o = opts) => parseTriggerFields(f, o, "http");

  it("a picture (File Storage's command runs for every .jpg) asks for no run and is no problem", () => {
    for (const file of [
      "/var/lib/motioneye/Camera1/2024-05-01/12-00-01.jpg",
      "/sdcard/Camera1/2024-05-01/12-00-01.JPG",
      "/sdcard/Camera1/2024-05-01/lastsnap.png",
    ]) {
      const r = parse(JSON.stringify({ camera: "Camera1", file, event: "picture_save" }));
      expect(r.ignored, file).toMatch(/^not a clip: ".(jpg|png)" is not in source.extensions/);
      expect(r.problems, file).toEqual([]);
      expect(r.request.clipPaths, file).toBeUndefined();
      expect(r.event).toBe("picture_save");
    }
  });

  it("a .thumb is never a clip, even when source.extensions would match its name", () => {
    for (const extensions of [EXT, [...EXT, ".thumb"]]) {
      const r = fields(
        { file: "/data/output/Camera1/2024-05-01/12-00-00.mp4.thumb" },
        { extensions },
      );
      expect(r.ignored).toMatch(/thumbnail/);
      expect(r.request.clipPaths).toBeUndefined();
    }
  });

  it("any other file is no clip either: no run, no warning", () => {
    for (const file of ["/etc/passwd", "/data/output/Camera1/2024-05-01/", "/x/2024-05-01/a.txt"]) {
      const r = fields({ file });
      expect(r.ignored, file).toMatch(/^not a clip/);
      expect(r.problems, file).toEqual([]);
    }
  });

  it("pictures are clips when source.extensions lists their type", () => {
    const r = fields(
      { file: "/sdcard/Camera1/2024-05-01/12-00-01.jpg", event: "picture_save" },
      { extensions: [...EXT, ".jpg"] },
    );
    expect(r.ignored).toBeUndefined();
    expect(r.request.clipPaths).toEqual([
      "Camera1/2024-05-01/12-00-01.jpg",
      "2024-05-01/12-00-01.jpg",
    ]);
  });

  it("a picture_save event without a file asks for no run, unless pictures are backed up", () => {
    expect(fields({ camera: "Camera1", event: "picture_save" }).ignored).toMatch(/picture_save/);
    expect(
      fields({ camera: "Camera1", event: "picture_save" }, { extensions: [".mp4", ".JPG"] })
        .ignored,
    ).toBeUndefined();
  });

  it("a movie and a plain trigger still run", () => {
    const movie = fields({ file: "/sdcard/Camera1/2024-05-01/12-00-00.mp4", event: "movie_end" });
    expect(movie.ignored).toBeUndefined();
    expect(movie.request).toEqual({
      origin: "http",
      clipPaths: ["Camera1/2024-05-01/12-00-00.mp4", "2024-05-01/12-00-00.mp4"],
    });
    expect(fields({})).toEqual({ request: { origin: "http" }, problems: [] });
    expect(fields({ camera: "Camera1", event: "event_end" }).ignored).toBeUndefined();
  });

  it("hook fields: strings only, the source is kept for the log, unknown fields are ignored", () => {
    const r = fields({ camera: "Camera1", source: "garage", time: "x", extra: 1 });
    expect(r).toMatchObject({ camera: "Camera1", source: "garage", problems: [] });
    expect(fields({ event: 5 }).problems).toEqual(['"event" must be a string, not a number']);
    expect(fields({ source: ["a"] }).problems).toEqual(['"source" must be a string, not an array']);
  });

  it("names the source to run: the trigger's own, or the local source whose folder holds the file", () => {
    expect(fields({ source: "garage" }).request).toEqual({ origin: "http", source: "garage" });
    expect(fields({ source: "../x" })).toMatchObject({
      request: { origin: "http" },
      problems: ['"source" ignored: not a source name ([a-z0-9][a-z0-9_-]*)'],
    });
    const o = {
      extensions: EXT,
      localRoots: [
        { source: "nas", root: "/media/nas" },
        { source: "porch", root: "/media/porch/" },
      ],
    };
    expect(fields({ file: "/media/porch/2024-05-01/12-00-00.mp4" }, o).request).toEqual({
      origin: "http",
      source: "porch",
      clipPaths: ["2024-05-01/12-00-00.mp4"],
    });
    // A file elsewhere: its camera/date/name tail, for every source (the trigger names none).
    expect(fields({ file: "/sdcard/Camera1/2024-05-01/12-00-00.mp4" }, o).request).toEqual({
      origin: "http",
      clipPaths: ["Camera1/2024-05-01/12-00-00.mp4", "2024-05-01/12-00-00.mp4"],
    });
  });
});
