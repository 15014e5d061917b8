// SPDX-License-Identifier: MIT
using System;
using CustomAutograd.Graph;
using CustomAutograd.TorchSharpInternals;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd;

// Derivatives from backward: vector-Jacobian products of the differentiable outputs through
// Autograd.Grad, each run twice to test reentrance. The other differentiable outputs get zero
// gradients (not undefined ones: how a Backward copes with those is
// BackwardContractChecks.UndefinedGrad's job, so these products test only the derivatives).
internal static class AnalyticalJacobian
{
    // Backward with one-hot output gradients: row r of each input's Jacobian with output o is the gradient of
    // that input for the output gradient e_r. Nondet is, per pair, the largest difference between the two
    // runs of each backward (NaN in both counts as equal). Returns null Jacobians after recording a failure in
    // result.
    internal static (Tensor[,]? Jacobians, double[,] Nondet) Compute(CheckedFunction f, int[] outputs, GradCheckResult result)
    {
        int[] diffInputs = f.DiffInputs;
        var jac = new Tensor[outputs.Length, diffInputs.Length];
        var nondet = new double[outputs.Length, diffInputs.Length];
        using DisposeScope evaluation = torch.NewDisposeScope();
        Tensor[] center = f.Evaluate();
        (Tensor[] ys, Tensor[] gradOutputs) = f.DifferentiableOutputsWithZeroGrads(center);
        for (int oo = 0; oo < outputs.Length; oo++)
        {
            int o = outputs[oo];
            for (int ii = 0; ii < diffInputs.Length; ii++)
                jac[oo, ii] = f.NewJacobian(o, diffInputs[ii]).MoveToOuterDisposeScope();
            Tensor flat = gradOutputs[Array.IndexOf(f.DiffOutputs, o)].view(-1);
            long rows = flat.numel();
            for (long r = 0; r < rows; r++)
            {
                using DisposeScope step = torch.NewDisposeScope();
                Tensor hot = flat[r];
                hot.fill_(KeptScalars.One);
                if (BackwardTwice(f, ys, o, gradOutputs, result) is not (Tensor?[] first, Tensor?[] second))
                    return (null, nondet);
                for (int ii = 0; ii < diffInputs.Length; ii++)
                {
                    Tensor? g1 = first[ii], g2 = second[ii];
                    if (g1 is not null)
                        jac[oo, ii].select(0, r).copy_(g1.detach().reshape(-1));
                    if ((g1 is not null || g2 is not null) && f.Input(diffInputs[ii]).numel() > 0)
                        nondet[oo, ii] = Math.Max(nondet[oo, ii], MaxDifference(g1, g2));
                }
                hot.fill_(KeptScalars.Zero);
            }
        }
        return (jac, nondet);
    }

    // One vector-Jacobian product of the differentiable outputs ys with
    // gradOutputs (those of every output but o being zero), run twice, the
    // first run's gradients checked against their inputs' shapes (and dtypes, with
    // GradCheckOptions.CheckGradDtypes). Null after recording a failure.
    internal static (Tensor?[] First, Tensor?[] Second)? BackwardTwice(CheckedFunction f, Tensor[] ys, int o, Tensor[] gradOutputs,
                                                                       GradCheckResult result)
    {
        Tensor[] inputs = f.DiffInputTensors();
        Tensor?[] first, second;
        try
        {
            first = Autograd.Grad(ys, inputs, gradOutputs, retainGraph: true, allowUnused: true);
            second = Autograd.Grad(ys, inputs, gradOutputs, retainGraph: true, allowUnused: true);
        }
        catch (CustomAutogradException e)
        {
            f.Fail(result, GradCheckFailureKind.BackwardFailed, o, null,
                   $"backward failed while computing the gradient of {f.OutputName(o)}.", e);
            return null;
        }
        for (int ii = 0; ii < inputs.Length; ii++)
        {
            if (!CheckGradient(f, first[ii], o, f.DiffInputs[ii], result))
                return null;
        }
        return (first, second);
    }

    // Fails result for the first pair whose two backward runs differ by more than
    // GradCheckOptions.NondetTol; returns whether none does.
    internal static bool CheckReentrant(CheckedFunction f, double[,] nondet, GradCheckResult result)
    {
        for (int oo = 0; oo < nondet.GetLength(0); oo++)
        {
            for (int ii = 0; ii < nondet.GetLength(1); ii++)
            {
                if (nondet[oo, ii] <= f.Options.NondetTol)
                    continue;
                int o = f.DiffOutputs[oo], i = f.DiffInputs[ii];
                f.Fail(result, GradCheckFailureKind.BackwardNotReentrant, o, i,
                       "backward is not reentrant: running it twice with the same input and output gradient gave results " +
                       $"{GradCheckFormat.Number(nondet[oo, ii])} apart (gradient of {f.InputName(i)}, backward of {f.OutputName(o)}); " +
                       $"the tolerance for nondeterminism (NondetTol) is {GradCheckFormat.Number(f.Options.NondetTol)}.");
                return false;
            }
        }
        return true;
    }

    // The largest element-wise difference of two gradients (null meaning zeros; NaN in both is equal,
    // NaN in one is infinitely far).
    private static double MaxDifference(Tensor? g1, Tensor? g2)
    {
        Tensor a = g1 is null ? torch.zeros_like(g2!, dtype: ScalarType.Float64) : g1.detach().to_type(ScalarType.Float64);
        Tensor b = g2 is null ? torch.zeros_like(g1!, dtype: ScalarType.Float64) : g2.detach().to_type(ScalarType.Float64);
        Tensor difference = torch.where(a.isnan() & b.isnan(), torch.zeros_like(a), (a - b).abs());
        return difference.nan_to_num(double.PositiveInfinity, double.PositiveInfinity, double.PositiveInfinity).max().item<double>();
    }

    // Checks a gradient's shape (and dtype when asked) against its input's; records a failure.
    private static bool CheckGradient(CheckedFunction f, Tensor? g, int o, int i, GradCheckResult result)
    {
        if (g is null)
            return true;
        Tensor x = f.Input(i);
        if (!g.shape.AsSpan().SequenceEqual(x.shape))
        {
            f.Fail(result, GradCheckFailureKind.GradShapeMismatch, o, i,
                   $"the gradient of {f.InputName(i)} has shape {ShapeFormat.Format(g.shape)}, the input {ShapeFormat.Format(x.shape)} " +
                   $"(backward of {f.OutputName(o)}).");
            return false;
        }
        if (f.Options.CheckGradDtypes && g.dtype != x.dtype)
        {
            f.Fail(result, GradCheckFailureKind.GradDtypeMismatch, o, i,
                   $"the gradient of {f.InputName(i)} is {g.dtype}, the input {x.dtype} (backward of {f.OutputName(o)}).");
            return false;
        }
        return true;
    }
}
