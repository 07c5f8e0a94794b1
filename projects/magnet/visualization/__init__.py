from .refseg_visualizer import RefSegLocalVisualizer

__all__ = ['RefSegLocalVisualizer']
