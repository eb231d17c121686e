"""Evaluation of models on datasets (COCO-style metrics and the evaluator API).

The C++-backed COCO evaluation lives in ``detectron2.evaluation.fast_eval_api``
(``COCOeval_opt``), imported from there as upstream code does.
"""
