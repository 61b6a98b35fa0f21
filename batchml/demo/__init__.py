"""``batchml demo``: the main job end to end, an application built on the library.

run.py walks the stages (sample, data plan, search, evaluation, publish,
package, serving, report); training.py holds the model, the objective and the
data splits; evaluation.py the ROC, working points and overtraining check;
serving.py the BatchedSession measurement; report_page.py the report.html;
sample.py the synthetic signal/background sample.

It sits above the areas (data, hpo, registry, package, inference) and below
the command line only. Importing this package imports nothing (no torch), so
``batchml.demo.sample`` costs no more than uproot and awkward.
"""
