import * as assert from "node:assert/strict";
import { checkWindow, isInsideWindow, nextOpening, parseWindow } from "../../safety/maintenanceWindow";

// 2024-01-06 is a Saturday.
const at = (iso: string) => new Date(iso);

describe("maintenance window", () => {
  const weekendNights = parseWindow({ days: ["sat", "sun"], start: "22:00", end: "02:00" }, "maintenanceWindow");
  const weekdayDay = parseWindow({ days: ["Tue"], start: "09:00", end: "17:30" }, "maintenanceWindow");

  it("is inside between start and end on a listed day", () => {
    assert.equal(isInsideWindow(weekdayDay, at("2024-01-09T09:00:00Z")), true); // Tue, start is inclusive
    assert.equal(isInsideWindow(weekdayDay, at("2024-01-09T17:29:59Z")), true);
    assert.equal(isInsideWindow(weekdayDay, at("2024-01-09T17:30:00Z")), false); // end is exclusive
    assert.equal(isInsideWindow(weekdayDay, at("2024-01-09T08:59:59Z")), false);
    assert.equal(isInsideWindow(weekdayDay, at("2024-01-10T10:00:00Z")), false); // Wed
  });

  it("crosses midnight into the next day, which need not be listed", () => {
    assert.equal(isInsideWindow(weekendNights, at("2024-01-06T23:30:00Z")), true); // Sat night
    assert.equal(isInsideWindow(weekendNights, at("2024-01-07T01:59:00Z")), true); // Sun early, opened Sat
    assert.equal(isInsideWindow(weekendNights, at("2024-01-08T01:00:00Z")), true); // Mon early, opened Sun
    assert.equal(isInsideWindow(weekendNights, at("2024-01-08T02:00:00Z")), false);
    assert.equal(isInsideWindow(weekendNights, at("2024-01-06T01:00:00Z")), false); // Sat early: Fri not listed
    assert.equal(isInsideWindow(weekendNights, at("2024-01-06T21:59:00Z")), false);
  });

  it("gives the next opening strictly after now", () => {
    assert.equal(nextOpening(weekendNights, at("2024-01-03T12:00:00Z")).toISOString(), "2024-01-06T22:00:00.000Z"); // Wed -> Sat
    assert.equal(nextOpening(weekendNights, at("2024-01-06T23:00:00Z")).toISOString(), "2024-01-07T22:00:00.000Z"); // inside Sat -> Sun
    assert.equal(nextOpening(weekendNights, at("2024-01-07T22:00:00Z")).toISOString(), "2024-01-13T22:00:00.000Z"); // Sun at start -> next Sat
    assert.equal(nextOpening(weekdayDay, at("2024-01-09T17:30:00Z")).toISOString(), "2024-01-16T09:00:00.000Z"); // a week later
    assert.equal(nextOpening(weekdayDay, at("2024-01-09T08:00:00Z")).toISOString(), "2024-01-09T09:00:00.000Z"); // later today
  });

  it("explains the decision with the next opening or the closing time", () => {
    const outside = checkWindow(weekendNights, at("2024-01-05T20:00:00Z"));
    assert.equal(outside.inside, false);
    assert.equal(outside.nextOpening, "2024-01-06T22:00:00.000Z");
    assert.match(outside.message, /outside maintenance window sat,sun 22:00-02:00 UTC.*next opening sat 2024-01-06 22:00 UTC \(in 1d 2h\)/);
    const inside = checkWindow(weekendNights, at("2024-01-07T01:00:00Z"));
    assert.equal(inside.inside, true);
    assert.equal(inside.closesAt, "2024-01-07T02:00:00.000Z");
    assert.match(inside.message, /closes sun 2024-01-07 02:00 UTC \(in 1h\)/);
  });

  it("with minRemaining, is too late to start a deployment when less than that is left", () => {
    const w = parseWindow({ days: ["sat", "sun"], start: "22:00", end: "02:00", minRemaining: "1h30m" }, "maintenanceWindow");
    const early = checkWindow(w, at("2024-01-07T00:29:00Z")); // Sun 00:29: 1h31m left
    assert.deepEqual([early.inside, early.startRefusal], [true, undefined]);
    const late = checkWindow(w, at("2024-01-07T00:31:00Z")); // 1h29m left
    assert.deepEqual([late.inside, late.startRefusal !== undefined, late.nextOpening], [true, true, "2024-01-07T22:00:00.000Z"]);
    assert.match(late.startRefusal ?? "", /closes sun 2024-01-07 02:00 UTC \(in 1h 29m\), less than minRemaining 1h30m: too late to start a deployment; next opening sun 2024-01-07 22:00 UTC/);
    assert.match(late.message, /^inside maintenance window .*; it closes sun 2024-01-07 02:00 UTC \(in 1h 29m\)$/, "the plain message for what may still run");
    // Rounded down: 59.5 minutes left is "in 59m", not "in 1h".
    assert.match(checkWindow(w, at("2024-01-07T01:00:30Z")).message, /\(in 59m\)$/);
    assert.equal(checkWindow(w, at("2024-01-05T12:00:00Z")).startRefusal, undefined, "outside is its own refusal");
    assert.equal(parseWindow({ days: ["sat"], start: "22:00", end: "02:00", minRemaining: "45m" }, "maintenanceWindow").minRemaining, "45m");
  });

  it("rejects malformed config naming the key and the fix", () => {
    assert.throws(() => parseWindow({ days: ["sat"], start: "22:00", end: "02:00", minRemaining: "an hour" }, "maintenanceWindow"),
      /maintenanceWindow\.minRemaining must be a duration like "45m" or "1h30m", got "an hour"/);
    assert.throws(() => parseWindow({ days: ["sat"], start: "22:00", end: "02:00", minRemaining: "0m" }, "maintenanceWindow"), /minRemaining must be a duration/);
    assert.throws(() => parseWindow({ days: ["sat"], start: "22:00", end: "02:00", minRemaining: "1h90m" }, "maintenanceWindow"), /minRemaining must be a duration/);
    assert.equal(parseWindow({ days: ["sat"], start: "22:00", end: "02:00", minRemaining: "90m" }, "maintenanceWindow").minRemaining, "90m");
    assert.throws(() => parseWindow({ days: ["sat"], start: "22:00", end: "02:00", minRemaining: "4h" }, "maintenanceWindow"),
      /maintenanceWindow\.minRemaining 4h is not shorter than the window \(4h\): no deployment could start/);
    assert.throws(() => parseWindow({ days: ["saturday"], start: "22:00", end: "02:00" }, "maintenanceWindow"), /maintenanceWindow\.days has "saturday"; use three-letter/);
    assert.throws(() => parseWindow({ days: [], start: "22:00", end: "02:00" }, "maintenanceWindow"), /maintenanceWindow\.days must be a non-empty list/);
    assert.throws(() => parseWindow({ days: ["sat"], start: "24:00", end: "02:00" }, "maintenanceWindow"), /maintenanceWindow\.start must be a UTC time "HH:MM"/);
    assert.throws(() => parseWindow({ days: ["sat"], start: "2:00", end: "04:00" }, "maintenanceWindow"), /maintenanceWindow\.start/);
    assert.throws(() => parseWindow({ days: ["sat"], start: "02:00", end: "02:00" }, "maintenanceWindow"), /empty window; remove maintenanceWindow/);
    assert.throws(() => parseWindow("sat 22-02", "maintenanceWindow"), /config maintenanceWindow must be an object/);
  });
});
