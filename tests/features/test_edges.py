"""Canny edge density and Zabih et al.'s edge change ratio."""

from __future__ import annotations

import numpy as np
import pytest

from vidlens.features import canny_edges, edge_change_ratio, edge_density


def checkerboard(h=64, w=64, square=8, offset=0):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((((xx + offset) // square) + (yy // square)) % 2 * 200 + 20).astype(np.uint8)


def test_checkerboard_has_more_edges_than_a_flat_frame():
    flat = np.full((64, 64), 128, np.uint8)
    assert edge_density(canny_edges(flat)) == 0.0
    density = edge_density(canny_edges(checkerboard()))
    assert 0.1 < density < 0.6


def test_edge_change_ratio():
    board = canny_edges(checkerboard())
    assert edge_change_ratio(board, board).ecr == 0.0
    # A 1-pixel shift stays inside the 2-pixel dilation: almost no edge enters or exits.
    assert edge_change_ratio(board, canny_edges(checkerboard(offset=1))).ecr < 0.1
    # A different scene: most edges are new and most old ones are gone.
    stripes = np.zeros((64, 64), np.uint8)
    stripes[4::12, :] = 255
    stripes[5::12, :] = 255
    change = edge_change_ratio(board, canny_edges(stripes))
    assert change.ecr > 0.5 and change.ecr == max(change.entering, change.exiting)
    # Cut to black: every old edge exits, none enter.
    black = canny_edges(np.zeros((64, 64), np.uint8))
    assert edge_change_ratio(board, black) == (pytest.approx(1.0), 0.0, pytest.approx(1.0))
    assert edge_change_ratio(black, board) == (pytest.approx(1.0), pytest.approx(1.0), 0.0)
    assert edge_change_ratio(black, black).ecr == 0.0
