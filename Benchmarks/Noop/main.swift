// A Swift program that does nothing, linked like vti-updown (-static-stdlib): the floor for any
// compiled hook's start-up, for Scripts/bench-hook.
