"""The streaming step on onnxruntime with every buffer bound once: no per-step allocation.

``BoundSteps`` allocates the frame, the output and two sets of state buffers when a stream starts,
wraps each in an ``OrtValue`` (which shares the NumPy array's memory on the CPU) and prepares two
``IOBinding``s: A reads state set 0 and writes set 1, B reads set 1 and writes set 0. A step copies
the frame into its buffer, runs one binding and flips to the other, so the new state is handed from
output to input without a copy. onnxruntime writes the outputs straight into the bound buffers.

Timings (``run`` vs bound, and the floor under both): docs/design.md, "Measurements behind the code".
"""

from __future__ import annotations

import numpy as np

_NUMPY = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
          "tensor(double)": np.float64}


class BoundSteps:
    """``session``'s step graph for ``batch`` streams; ``frame_name`` is its frame input, the other
    inputs are state, each fed back from the output of the same name with ``_in`` → ``_out``."""

    def __init__(self, session, state_names: tuple[str, ...], shapes: dict[str, tuple[int, ...]],
                 frame_name: str = "x_t"):
        import onnxruntime as ort

        self.session = session
        inputs = {i.name: i for i in session.get_inputs()}
        self.frame = np.zeros(shapes[frame_name], _NUMPY.get(inputs[frame_name].type, np.float32))
        self.sets = [{n: np.zeros(shapes[n], np.float32) for n in state_names} for _ in range(2)]
        # the output buffers take the shapes of one real step (zero frame, zero state)
        first = session.run(None, {frame_name: self.frame, **self.sets[0]})
        names = [o.name for o in session.get_outputs()]
        state_outputs = {n.replace("_in", "_out"): n for n in state_names}
        self.outputs = {n: np.zeros_like(v) for n, v in zip(names, first) if n not in state_outputs}
        self.y = self.outputs.get("y")
        keep = []  # the OrtValues must live as long as the bindings
        self.bindings = []
        for reads, writes in ((0, 1), (1, 0)):
            binding = session.io_binding()
            for name, array in ((frame_name, self.frame), *self.sets[reads].items()):
                value = ort.OrtValue.ortvalue_from_numpy(array)
                binding.bind_ortvalue_input(name, value)
                keep.append(value)
            for name in names:
                array = self.sets[writes][state_outputs[name]] if name in state_outputs else self.outputs[name]
                value = ort.OrtValue.ortvalue_from_numpy(array)
                binding.bind_ortvalue_output(name, value)
                keep.append(value)
            self.bindings.append(binding)
        self._keep = keep
        self.turn = 0
        # onnxruntime's binding call without its Python wrapper (about 1 µs a step), where it has one
        inner = getattr(session, "_sess", None)
        if inner is not None and all(hasattr(b, "_iobinding") for b in self.bindings):
            raw = [b._iobinding for b in self.bindings]
            self._run = lambda turn: inner.run_with_iobinding(raw[turn], None)
        else:
            self._run = lambda turn: session.run_with_iobinding(self.bindings[turn])

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The state the next step reads (the live buffers)."""
        return self.sets[self.turn]

    def zero(self, stream: int | None = None) -> None:
        for state in self.sets:
            for array in state.values():
                if stream is None:
                    array[...] = 0.0
                else:
                    array[:, stream] = 0.0

    def step(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """Advance every stream by ``frame``; the outputs' buffers (valid until the next step)."""
        self.frame[...] = frame
        self._run(self.turn)
        self.turn ^= 1
        return self.outputs
