"""Helpers for the fomaml-notebooks tutorial series, in layers: data → tasks → algorithms → training and
evaluation → notebook companions → command-line tools.

Rule: a module imports only from its own layer or lower ones (tests/test_layout.py checks it).
Layers, lowest first:

0. ``seeding``                  seed_everything: Python, NumPy and torch seeded together (every layer uses it)
1. ``data``
   - ``data.mnist``             the real MNIST built offline from a hash-pinned source; preprocessing
   - ``data.tasks``             N-way K-shot tasks over splits of the digit classes (FewShotSampler)
   - ``data.taskbatch``         TaskBatch: the support and query tensors of a batch of tasks
2. ``algorithms``
   - ``algorithms.registry``    one class per algorithm (MAML, FOMAML, Reptile, ANIL, Meta-SGD), the shared inner loop
   - ``algorithms.losses``      the one loss rule; per-task loss and accuracy
   - ``algorithms.models``      MLP and ConvNet, as modules and as pure functions of a parameter dict
   - ``algorithms.maml``        adapt and meta_gradient (loop, vmap and low-rank implementations)
   - ``algorithms.mlp_lowrank`` the fast MLP meta-gradient: every inner step a low-rank update
3. ``training``
   - ``training.loop``          meta_train, its History, DivergenceError
   - ``training.evaluation``    evaluate: adapt to many new tasks, query score after every step
   - ``training.checkpoints``   save and load a meta-learned initialisation with what produced it
   - ``training.baselines``     the transfer baseline: pretrain, then a fresh output layer per task
4. ``companions`` (what one notebook or the assignments need)
   - ``companions.approx``      figures that differ between machines, printed with a mark and a tolerance
   - ``companions.quadratic``   MAML on quadratic losses in closed form (notebook 01, assignment 1)
   - ``companions.sinusoid``    sinusoid regression, the MAML paper's toy problem (notebook 02, assignment 2)
   - ``companions.explore``     notebook 03's slider and button callbacks
   - ``companions.plots``       labelled image grids of few-shot tasks
   - ``companions.sliders``     FigurePanel: sliders that redraw a figure from any thread
   - ``companions.bugs``        meta-training with classic bugs switched on (notebook 04)
   - ``companions.diagnose``    checks that find the classic silent bugs of MAML code (notebook 04)
   - ``companions.checks``      the assignments' checks, each failure said in words
   - ``companions.memory``      saved-tensor bytes and allocator peak of a computation
   - ``companions.profiling``   where a meta-step's time goes; matrix-product throughput (notebook 05)
   - ``companions.flops``       the flop model of one FOMAML meta-gradient, dense and low-rank (notebook 05)
   - ``companions.flops_view``  notebook 05's slider figure of that model
5. ``tools`` (``python -m fomaml_utils.tools.NAME``)
   - ``tools.train``            meta-train and meta-test on few-shot MNIST from the command line
   - ``tools.bench``            tasks per second and peak memory of every meta-gradient path
   - ``tools.course``           release and grade the course assignments (nbgrader)
   - ``tools.portability``      numeric settings that act like another CPU, and nbval under them
   - ``tools.peer_learn2learn`` learn2learn's MAML wrapper from its hash-checked archive, for bench
   - ``tools.cli``              what the command lines share: number checkers, atomic output files

``data``, ``algorithms`` and ``training`` re-export the names notebooks use, e.g.
``from fomaml_utils.algorithms import MLP, meta_gradient``; companions and tools are imported by module,
e.g. ``from fomaml_utils.companions.sliders import FigurePanel``.
"""

__version__ = "0.1.0"
