import * as assert from "node:assert/strict";
import { run as windowCheck } from "../../hooks/steps/window-check";
import { StepError } from "../../hooks/lib/errors";

const window = JSON.stringify({ days: ["sat", "sun"], start: "22:00", end: "02:00" });
const override = JSON.stringify({ reason: "data loss hotfix", approvedBy: "cto", ticket: "OPS-7" });

describe("window-check step", () => {
  it("passes inside the window (across midnight)", async () => {
    const r = await windowCheck(["--window", window], {}, new Date("2024-01-07T01:00:00Z"));
    assert.deepEqual([r.inside, r.overridden, r.closesAt], [true, false, "2024-01-07T02:00:00.000Z"]);
  });

  it("fails outside the window with the next opening, before anything changes", async () => {
    await assert.rejects(windowCheck(["--window", window], {}, new Date("2024-01-03T12:00:00Z")), (e: StepError) => {
      assert.match(e.message, /outside maintenance window .* next opening sat 2024-01-06 22:00 UTC \(in 3d 10h\); nothing was changed/);
      assert.match(e.next, /after 2024-01-06T22:00:00.000Z, or set config maintenanceWindowOverride/);
      return true;
    });
  });

  it("passes outside the window with an audited override", async () => {
    const r = await windowCheck(["--window", window, "--override", override], {}, new Date("2024-01-03T12:00:00Z"));
    assert.deepEqual([r.inside, r.overridden, r.nextOpening], [false, true, "2024-01-06T22:00:00.000Z"]);
  });

  it("inside the window, refuses to start with less than minRemaining left; an override lets it", async () => {
    const w = JSON.stringify({ days: ["sat", "sun"], start: "22:00", end: "02:00", minRemaining: "45m" });
    const enough = await windowCheck(["--window", w], {}, new Date("2024-01-07T01:00:00Z"));
    assert.deepEqual([enough.inside, enough.overridden], [true, false]);
    await assert.rejects(windowCheck(["--window", w], {}, new Date("2024-01-07T01:30:00Z")), (e: StepError) => {
      assert.match(e.message, /\(in 30m\), less than minRemaining 45m: too late to start a deployment.*; nothing was changed/);
      assert.match(e.next, /after 2024-01-07T22:00:00.000Z, or set config maintenanceWindowOverride/);
      return true;
    });
    const overridden = await windowCheck(["--window", w, "--override", override], {}, new Date("2024-01-07T01:30:00Z"));
    assert.deepEqual([overridden.inside, overridden.overridden], [true, true]);
  });

  it("rejects bad flags as usage errors naming the key", async () => {
    await assert.rejects(windowCheck([], {}), /--window is required/);
    await assert.rejects(windowCheck(["--window", "{nope"], {}), /--window is not JSON/);
    await assert.rejects(windowCheck(["--window", JSON.stringify({ days: ["sat"], start: "25:00", end: "01:00" })], {}), /maintenanceWindow\.start/);
    await assert.rejects(windowCheck(["--window", window, "--override", JSON.stringify({ reason: "" })], {}), /maintenanceWindowOverride needs non-empty reason/);
  });
});
