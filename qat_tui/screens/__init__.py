"""The wizard's screens, one per file: data, backend, stages, qconfig, compile, review (the six steps,
on :mod:`.base`), run, results, and the one error modal."""
