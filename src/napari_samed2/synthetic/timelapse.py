"""``(T, Y, X)`` time-lapses with ground truth: moving, deforming cells that enter, leave,
divide and fade."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .degradation import Degradation, degrade, to_uint16
from .drawing import place_objects, render_blobs
from .sample import SyntheticSample, check_shape

__all__ = ["moving_cells_timelapse"]


def moving_cells_timelapse(
    shape: tuple[int, int, int] = (24, 128, 128),
    seed: int = 0,
    count: int | None = None,
    radius: tuple[float, float] = (7.0, 14.0),
    speed: float = 1.5,
    events: bool = True,
    degradation: Degradation | None = None,
) -> SyntheticSample:
    """A ``(T, Y, X)`` time-lapse of moving, deforming cells.

    With ``events=True`` some cells enter through the border, leave it, divide (the daughters
    get new ids; the mother's id ends) or fade out (bleaching; the label ends when the cell
    drops below a fifth of its brightness).

    Parameters
    ----------
    shape : (int, int, int)
        ``(T, Y, X)``.
    seed : int
        Seed.
    count : int, optional
        Cells present at the start (random by default).
    radius : (float, float)
        Radius range, pixels.
    speed : float
        Typical displacement per frame, pixels.
    events : bool
        Enable entering, leaving, division and fading.
    degradation : Degradation, optional
        Recording parameters (with bleaching drift along T); random by default.
    """
    shape = check_shape(shape, 3, "shape")
    rng = np.random.default_rng(seed)
    frames, height, width = shape
    plane = (height, width)
    if count is None:
        count = max(2, int(0.25 * height * width / (np.pi * np.mean(radius) ** 2)))
    centres, radii = place_objects(plane, rng, radius, 1.0, max_count=count)
    cells = [
        _Cell(i + 1, c, r, rng.normal(0, speed, 2), rng.uniform(0.4, 1.0), -1)
        for i, (c, r) in enumerate(zip(centres, radii, strict=True))
    ]
    log: dict[str, Any] = {"enter": [], "leave": [], "split": {}, "fade": []}
    next_id = len(cells) + 1
    if events and frames > 4:
        for cell in rng.choice(cells, size=min(len(cells), 2), replace=False):
            if rng.random() < 0.5:
                cell.fade_from = int(rng.integers(frames // 3, frames - 2))
                log["fade"].append(cell.ident)
        leaving = cells[int(rng.integers(len(cells)))]
        leaving.velocity = _towards_border(leaving.centre, plane) * max(speed, 2.0) * 1.5
        log["leave"].append(leaving.ident)
        entering_at = int(rng.integers(1, frames // 2))
        split_at = int(rng.integers(frames // 3, frames - 3))
    else:
        entering_at = split_at = -1
    labels = np.zeros(shape, np.int32)
    clean = np.zeros(shape, np.float32)
    orientation = {c.ident: rng.uniform(0, np.pi) for c in cells}
    for t in range(frames):
        if t == entering_at:
            cell = _entering_cell(next_id, plane, rng, radius, speed)
            orientation[cell.ident] = rng.uniform(0, np.pi)
            cells.append(cell)
            log["enter"].append(next_id)
            next_id += 1
        if t == split_at:
            moving_on = set(log["leave"]) | set(log["enter"])
            big = [c for c in cells if c.alive and c.fade_from < 0 and c.ident not in moving_on]
            if big:
                mother = max(big, key=lambda c: c.radius)
                mother.alive = False
                for sign in (-1.0, 1.0):
                    offset = sign * mother.radius * 0.55 * np.array([0.3, 1.0])
                    daughter = _Cell(
                        next_id,
                        mother.centre + offset,
                        mother.radius * 0.75,
                        mother.velocity + sign * np.array([0.0, 1.0]),
                        mother.brightness,
                        -1,
                    )
                    orientation[next_id] = orientation[mother.ident]
                    log["split"][next_id] = mother.ident
                    cells.append(daughter)
                    next_id += 1
        live = [c for c in cells if c.alive and c.visible(t)]
        if live:
            centres_t = np.array([c.centre for c in live])
            radii_t = np.array(
                [[c.radius * (1 + 0.1 * np.sin(0.4 * t + c.ident)), c.radius] for c in live]
            )
            angles = np.array([orientation[c.ident] + 0.05 * t for c in live])
            local_rng = np.random.default_rng([seed, t])
            frame_labels, rel = render_blobs(plane, centres_t, radii_t, local_rng, angles=angles)
            ids = np.array([0] + [c.ident for c in live], np.int32)
            labels[t] = ids[frame_labels]
            brightness = np.array([0.0] + [c.brightness * c.fade(t) for c in live])
            clean[t] = brightness[frame_labels] * (1.0 - 0.35 * rel**2)
        for c in cells:
            c.step(rng, speed, plane, leaving=c.ident in log["leave"] or c.ident in log["enter"])
    present = set(np.unique(labels).tolist()) - {0}
    log = {
        "enter": [i for i in log["enter"] if i in present],
        "leave": [i for i in log["leave"] if i in present],
        "split": {d: m for d, m in log["split"].items() if d in present},
        "fade": [i for i in log["fade"] if i in present],
    }
    degradation = degradation or Degradation.random(rng, stack=True)
    image = degrade(clean, rng, degradation, axis=0)
    return SyntheticSample(to_uint16(image), labels, 0, "timelapse", log)


@dataclass
class _Cell:
    ident: int
    centre: np.ndarray
    radius: float
    velocity: np.ndarray
    brightness: float
    fade_from: int
    alive: bool = True

    def fade(self, t: int) -> float:
        if self.fade_from < 0 or t < self.fade_from:
            return 1.0
        return float(0.75 ** (t - self.fade_from + 1))

    def visible(self, t: int) -> bool:
        return self.fade(t) >= 0.2

    def step(
        self, rng: np.random.Generator, speed: float, plane: tuple[int, int], leaving: bool
    ) -> None:
        # Persistent random walk: cells keep most of their direction from frame to frame.
        jitter = rng.normal(0, 0.3 * speed, 2)
        if leaving:
            self.centre = self.centre + self.velocity + 0.3 * jitter
            return
        self.velocity = 0.7 * self.velocity + jitter
        self.centre = self.centre + self.velocity
        # Cells that are not meant to leave bounce off the border.
        for axis in range(2):
            low, high = self.radius * 0.5, plane[axis] - self.radius * 0.5
            if not low <= self.centre[axis] <= high:
                self.centre[axis] = np.clip(self.centre[axis], low, high)
                self.velocity[axis] = -self.velocity[axis]


def _entering_cell(ident, plane, rng, radius, speed) -> _Cell:
    side = int(rng.integers(4))
    r = rng.uniform(*radius)
    along = rng.uniform(0.2, 0.8) * plane[side % 2 == 0]
    if side == 0:
        centre, velocity = (-r, along), (1, 0)
    elif side == 1:
        centre, velocity = (along, plane[1] + r), (0, -1)
    elif side == 2:
        centre, velocity = (plane[0] + r, along), (-1, 0)
    else:
        centre, velocity = (along, -r), (0, 1)
    step = max(speed, 1.5) * 1.5
    return _Cell(ident, np.array(centre, float), r, np.array(velocity, float) * step, 0.8, -1)


def _towards_border(centre: np.ndarray, plane: tuple[int, int]) -> np.ndarray:
    distances = [centre[0], plane[1] - centre[1], plane[0] - centre[0], centre[1]]
    directions = [(-1, 0), (0, 1), (1, 0), (0, -1)]
    return np.array(directions[int(np.argmin(distances))], float)
