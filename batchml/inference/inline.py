"""Whether a coroutine batch runs on the event loop or on the helper thread.

Handing a batch to the helper thread and back costs a fixed hop (two thread
wake-ups and the loop's callback), which a lone caller of a light model pays
many times over its ONNX Runtime call (BENCHMARKS.md, Inference). So each
batch's call is timed, and a batch whose estimated call is quicker than the
hop runs on the loop, holding it as briefly as calling ONNX Runtime in the
coroutine would.
"""

from __future__ import annotations

import math


class InlineRule:
    """Seconds per row of recent model calls, and whether a batch is quicker than the hop.

    Until a call has been timed the estimate is infinite: the first batch goes
    to the helper. Recent calls are weighted most (an exponential average), so
    the estimate follows a machine that grows busy or quiet.
    """

    HOP_S = 1e-4  # a batch estimated quicker than this runs on the loop
    RECENT = 0.2  # the weight of the latest call in the average

    def __init__(self) -> None:
        self.row_s = math.inf

    def record(self, rows: int, seconds: float) -> None:
        took = seconds / rows
        if math.isinf(self.row_s):
            self.row_s = took
        else:
            self.row_s += self.RECENT * (took - self.row_s)

    def quick(self, rows: int) -> bool:
        return self.row_s * rows < self.HOP_S
