// `pulumi preview --policy-pack policy` (or publish it to enforce it for everyone).
import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("vibes-safety", { enforcementLevel: "mandatory", policies });
