// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// PyTorch's fast mode: compares the scalars v^T J u for random unit vectors u (per input) and v (per
// output), two function evaluations per input and one backward per output, the absolute tolerance scaled by
// sum(u) * sum(v). A failing pair is re-checked element by element so that the report names its worst
// element.
internal static class FastModeCheck
{
    internal static void Run(CheckedFunction f, GradCheckResult result)
    {
        int[] diffInputs = f.DiffInputs, diffOutputs = f.DiffOutputs;
        using Generator? generator = f.Options.Seed is long seed ? new Generator(unchecked((ulong)seed), torch.CPU) : null;
        Tensor?[] u = Array.ConvertAll(diffInputs, i => UnitVector(f.Input(i), generator));
        var failing = new List<(int OutputPosition, int InputPosition, double Numerical, double Analytical, double Tolerance)>();
        var nondet = new double[diffOutputs.Length, diffInputs.Length];

        using (DisposeScope evaluation = torch.NewDisposeScope())
        {
            // Analytical: one backward per output with gradient v, dotted with each u.
            Tensor[] center = f.Evaluate();
            (Tensor[] ys, Tensor[] zeros) = f.DifferentiableOutputsWithZeroGrads(center);
            var analytical = new double[diffOutputs.Length, diffInputs.Length];
            var v = new Tensor?[diffOutputs.Length];
            for (int oo = 0; oo < diffOutputs.Length; oo++)
            {
                Tensor y = ys[oo];
                if (UnitVector(y, generator) is not { } vo)
                    continue;
                v[oo] = vo;
                var gradOutputs = (Tensor[])zeros.Clone();
                gradOutputs[oo] = vo.reshape(y.shape).to(y.dtype, y.device);
                if (AnalyticalJacobian.BackwardTwice(f, ys, diffOutputs[oo], gradOutputs, result) is not (Tensor?[] first, Tensor?[] second))
                    return;
                for (int ii = 0; ii < diffInputs.Length; ii++)
                {
                    if (u[ii] is not { } ui)
                        continue;
                    double a1 = Project(first[ii], ui), a2 = Project(second[ii], ui);
                    nondet[oo, ii] = double.IsNaN(a1) && double.IsNaN(a2) ? 0
                        : double.IsNaN(a1 - a2) ? double.PositiveInfinity : Math.Abs(a1 - a2);
                    analytical[oo, ii] = a1;
                }
            }

            // Numerical: one pair of evaluations per input, perturbed along u.
            for (int ii = 0; ii < diffInputs.Length; ii++)
            {
                if (u[ii] is not { } ui)
                    continue;
                using DisposeScope step = torch.NewDisposeScope();
                Tensor[] ju = NumericalJacobian.Directional(f, diffInputs[ii], ui, diffOutputs);
                for (int oo = 0; oo < diffOutputs.Length; oo++)
                {
                    if (v[oo] is not { } vo)
                        continue;
                    double n = ju[oo].dot(vo.to(ju[oo].device)).item<double>();
                    double a = analytical[oo, ii];
                    double atol = f.Options.Atol * ui.sum().item<double>() * vo.sum().item<double>();
                    double tolerance = atol + f.Options.Rtol * Math.Abs(n);
                    if (!(Math.Abs(a - n) <= tolerance))
                        failing.Add((oo, ii, n, a, tolerance));
                }
            }
        }

        if (failing.Count == 0)
            AnalyticalJacobian.CheckReentrant(f, nondet, result);
        else
            Recheck(f, failing, result);
    }

    // Re-checks the failing pairs element by element, for a report naming the worst element.
    private static void Recheck(CheckedFunction f, List<(int OutputPosition, int InputPosition, double Numerical, double Analytical, double Tolerance)> failing,
                                GradCheckResult result)
    {
        var mismatches = new List<GradCheckMismatch>();
        foreach ((int oo, int ii, double n, double a, double tolerance) in failing)
        {
            using DisposeScope recheck = torch.NewDisposeScope();
            int o = f.DiffOutputs[oo], i = f.DiffInputs[ii];
            Tensor numerical = NumericalJacobian.Compute(f, new[] { i }, new[] { o })[0, 0];
            if (AnalyticalJacobian.Compute(f, new[] { o }, result).Jacobians is not { } analytical)
                return;
            GradCheckMismatch m = JacobianComparison.Compare(f, o, i, numerical, analytical[0, ii], onlyIfFailing: false)
                ?? throw new UnreachableException("A failing projection comes from a pair with elements.");
            m.ProjectedNumerical = n;
            m.ProjectedAnalytical = a;
            m.ProjectedTolerance = tolerance;
            m.Jacobian = JacobianComparison.SmallJacobian(f, o, i, numerical, analytical[0, ii]);
            mismatches.Add(m);
        }
        JacobianComparison.FailMismatch(f, result, mismatches);
    }

    // A random unit vector (uniform in [0, 1), normalised) with like's element count,
    // float64 on its device; null for an empty tensor.
    private static Tensor? UnitVector(Tensor like, Generator? generator)
    {
        long n = like.numel();
        if (n == 0)
            return null;
        Tensor r = torch.rand(new[] { n }, dtype: ScalarType.Float64, generator: generator);
        r.div_(r.norm());
        return r.to(like.device);
    }

    private static double Project(Tensor? g, Tensor u) =>
        g is null ? 0.0 : g.detach().reshape(-1).to_type(ScalarType.Float64).dot(u.to(g.device)).item<double>();
}
