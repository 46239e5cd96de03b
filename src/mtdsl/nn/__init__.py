"""Runtime modules: backbone segments, heads, losses and the multi-task model.

Generated ``model.py`` files import from here and nowhere else in mtdsl.
"""
