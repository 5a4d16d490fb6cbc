import { describe, expect, it } from "vitest";

import type { IpcError } from "./bindings";
import { describeError, remedy } from "./errors";

describe("a failed command in the window", () => {
  it("reads as its message, with the app's next step where there is one", () => {
    const locked: IpcError = {
      code: "keychain_unavailable",
      message: "cannot read the key: the keychain is locked",
      hint: "unlock the login keyring (your desktop's Passwords and Keys), then try again",
    };
    expect(describeError(locked)).toBe(
      "cannot read the key: the keychain is locked. Unlock the login keyring (your desktop's Passwords and Keys), then try again.",
    );
    expect(describeError({ code: "not_found", message: "no session x", hint: null })).toBe("no session x");
  });

  it("offers the page that mends it by its code, not by its words", () => {
    expect(remedy("keychain_unavailable")?.page).toBe("settings");
    expect(remedy("engine_not_installed")?.page).toBe("machine");
    expect(remedy("no_model")?.page).toBe("machine");
    expect(remedy("docker_unavailable")?.label).toContain("system check");
    // A port taken and a locked keychain read alike as prose; their codes send them apart.
    expect(remedy("engine_failed")).not.toEqual(remedy("keychain_unavailable"));
    expect(remedy("invalid_input")).toBeNull();
    expect(remedy("busy")).toBeNull();
  });
});
