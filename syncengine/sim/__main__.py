"""`python -m syncengine.sim` runs the simulator command directly."""

from syncengine.sim.command import sim

if __name__ == "__main__":
    sim(prog_name="python -m syncengine.sim")
