import { describe, expect, it } from "vitest";
import { isDate, parseClipId, remotePathOf, tryParseClipId } from "../../src/clips/clipId.js";

const EXT = [".mp4", ".avi", ".mkv", ".mov"];

describe("clip ids", () => {
  it("parses both motionEye layouts", () => {
    expect(parseClipId("Camera1/2024-05-01/12-00-00.mp4", EXT)).toEqual({
      id: "Camera1/2024-05-01/12-00-00.mp4",
      camera: "Camera1",
      date: "2024-05-01",
      name: "12-00-00.mp4",
    });
    expect(parseClipId("2024-05-01/12-00-00.mp4", EXT).camera).toBe("default");
    expect(remotePathOf("Camera1/2024-05-01/12-00-00.mp4")).toBe(
      "Camera1/2024-05-01/12-00-00.mp4.age",
    );
  });

  it.each([
    ["../2024-05-01/x.mp4", '".." is not allowed'],
    ["Camera1/../../etc/passwd", '".." is not allowed'],
    ["/etc/2024-05-01/x.mp4", "must be relative"],
    ["Camera1/2024-05-01/..", '".." is not allowed'],
    ["Camera1/./2024-05-01/x.mp4", '"." is not allowed'],
    ["Camera1/2024-05-01\\..\\x.mp4", "backslashes"],
    ["Camera1/2024-13-01/x.mp4", "is not a date"],
    ["Camera1/2024-02-30/x.mp4", "is not a date"],
    ["Camera1//x.mp4", "empty path segment"],
    ["Camera1/2024-05-01/x.mp4\u0000.mp4", "control characters"],
    ["a/b/c/2024-05-01/x.mp4", "expected [SOURCE/]CAMERA/YYYY-MM-DD/NAME"],
    ["Camera1/2024-05-01/x.mp4.thumb", "not a video file"],
  ])("rejects %j (%s)", (input, reason) => {
    expect(() => parseClipId(input, EXT)).toThrow(reason);
    expect(tryParseClipId(input, EXT)).toBeUndefined();
  });

  it("names the input without echoing control characters", () => {
    expect(() => parseClipId("\u001b[31m../x")).toThrow(/invalid clip id "\?\[31m/);
  });

  it("knows real dates", () => {
    expect(isDate("2024-02-29")).toBe(true);
    expect(isDate("2023-02-29")).toBe(false);
    expect(isDate("2024-5-1")).toBe(false);
  });
});
