"""``ResumableIterLoop``: mmengine's iteration loop, resumed by moving the sampler to the checkpoint's
position instead of reading (and decoding) every batch already trained on. ``resume_draws`` (set when a
checkpoint is restored) is that position: the draws the checkpoint's run had consumed, which stays right
when a forced resume changed the batch size."""

from __future__ import annotations

from pathlib import Path

from mmengine.logging import print_log
from mmengine.runner.loops import IterBasedTrainLoop, _InfiniteDataloaderIterator

from babyvlm.core.progress import progress as progress_bar


class ResumableIterLoop(IterBasedTrainLoop):
    resume_draws: int | None = None

    def run(self):
        self.runner.call_hook("before_train")
        self.runner.call_hook("before_train_epoch")
        if self._iter > 0:
            sampler = self.dataloader.sampler
            draws = self.resume_draws
            sampler.set_position(self._iter * self.dataloader.batch_size if draws is None else draws)
            self.dataloader_iterator = _InfiniteDataloaderIterator(self.dataloader)
            print_log(f"resumed at iteration {self._iter}: sampler moved to draw {sampler.position}", logger="current")
        with progress_bar(self._max_iters, f"train {Path(self.runner.work_dir).name}", unit="iter") as bar:
            bar.update(self._iter)  # resumed: the iterations already trained
            while self._iter < self._max_iters and not self.stop_training:
                self.runner.model.train()
                self.run_iter(next(self.dataloader_iterator))
                bar.update()
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")
        return self.runner.model
