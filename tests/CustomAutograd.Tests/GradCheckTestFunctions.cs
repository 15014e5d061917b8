// SPDX-License-Identifier: MIT
using System;
using System.Collections.Generic;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Tests;

/// <summary>Custom functions for the gradient-checking tests: correct ones, and ones with planted bugs.</summary>
internal static class GradCheckTestFunctions
{
    internal static readonly UnaryFunction Tanh = TestFunctions.SavingOutput(
    "GcTanh", x => x.tanh(), (g, y) => g * (1 - y * y));

    /// <summary>Softmax over the last dimension; Backward: y * (g - sum(g * y)).</summary>
    internal static readonly UnaryFunction Softmax = TestFunctions.SavingOutput(
    "GcSoftmax", x => x.softmax(-1), (g, y) => y * (g - (g * y).sum(-1, keepdim: true)));

    /// <summary>Returns a view of its input (the transpose).</summary>
    internal static readonly UnaryFunction TransposeView = AutogradFunction.Create(
        "GcTransposeView",
        (ctx, x) => x.t(),
        (ctx, g) => g.t());

    /// <summary>x^3, Backward 3 x^2 g written with differentiable operations (so it is twice differentiable).</summary>
    internal static readonly UnaryFunction Cube = TestFunctions.SavingInput(
    "GcCube", x => x.pow(3), (g, x) => 3 * x * x * g);

    // ---------------------------------------------------------------- planted bugs

    /// <summary>Sigmoid whose Backward has a sign error.</summary>
    internal static readonly UnaryFunction SigmoidSignError = TestFunctions.SavingOutput(
    "GcSigmoidSignError", x => x.sigmoid(), (g, y) => -(g * y * (1 - y)));

    /// <summary>Tanh whose Backward is twice too large.</summary>
    internal static readonly UnaryFunction TanhWrongScale = TestFunctions.SavingOutput(
    "GcTanhWrongScale", x => x.tanh(), (g, y) => 2 * g * (1 - y * y));

    /// <summary>Matrix product whose gradient for a uses b instead of b^T (right shape for square b).</summary>
    internal static readonly BinaryFunction MatMulTransposedGrad = TestFunctions.SavingInputs(
    "GcMatMulTransposedGrad", (a, b) => a.mm(b), (g, a, b) => (g.mm(b), a.t().mm(g)));

    /// <summary>Element-wise a * b whose Backward gives each input the other's gradient.</summary>
    internal static readonly BinaryFunction MulSwappedGrads = TestFunctions.SavingInputs(
    "GcMulSwappedGrads", (a, b) => a * b, (g, a, b) => (g * a, g * b));

    /// <summary>Element-wise a * b whose Backward returns null (no gradient) for b.</summary>
    internal static readonly BinaryFunction MulNullGradForB = AutogradFunction.Create(
        "GcMulNullGradForB",
        (ctx, a, b) =>
        {
            ctx.SaveForBackward(b);
            return a * b;
        },
        (ctx, g) => (g * ctx.SavedTensors[0]!, null));

    /// <summary>(a, b) -> (a + b, a * b) whose Backward forgets the second output's contribution to a.</summary>
    internal static readonly MultiFunction SumAndProductMissingContribution = TestFunctions.SumAndProduct(
    "GcSumAndProductMissing", (gs, a, b) => new[] { gs[0]!, gs[0]! + gs[1]! * a });

    /// <summary>x^3 whose Backward detaches x: the gradient is right, its derivative with respect to x is zero.</summary>
    internal static readonly UnaryFunction CubeDetachedBackward = TestFunctions.SavingInput(
    "GcCubeDetached", x => x.pow(3), (g, x) => 3 * x.detach() * x.detach() * g);

    /// <summary>(x, g) -> 3 x^2 g with a wrong derivative for x (3 x g gg instead of 6 x g gg).</summary>
    internal static readonly BinaryFunction CubeGradWrongX = TestFunctions.SavingInputs(
    "GcCubeGradWrongX", (x, g) => 3 * x * x * g, (gg, x, g) => (3 * x * g * gg, 3 * x * x * gg));

    /// <summary>(x, g) -> 3 x^2 g with a wrong derivative for g (2 x^2 gg instead of 3 x^2 gg).</summary>
    internal static readonly BinaryFunction CubeGradWrongG = TestFunctions.SavingInputs(
    "GcCubeGradWrongG", (x, g) => 3 * x * x * g, (gg, x, g) => (6 * x * g * gg, 2 * x * x * gg));

    /// <summary>x^3 whose Backward is the custom function <see cref="CubeGradWrongX"/> (wrong double backward for x).</summary>
    internal static readonly UnaryFunction CubeWrongDoubleBackwardX = CubeWithBackward("GcCubeWrongDoubleX", CubeGradWrongX);

    /// <summary>x^3 whose Backward is the custom function <see cref="CubeGradWrongG"/> (wrong double backward for g).</summary>
    internal static readonly UnaryFunction CubeWrongDoubleBackwardG = CubeWithBackward("GcCubeWrongDoubleG", CubeGradWrongG);

    private static UnaryFunction CubeWithBackward(string name, BinaryFunction backward) =>
        TestFunctions.SavingInput(name, x => x.pow(3), (g, x) => backward.Apply(x, g));

    /// <summary>Element-wise 2x, Backward 2g (not null-safe) with materialisation off: crashes on a missing gradient.</summary>
    internal static readonly UnaryFunction DoubleNullUnsafe = AutogradFunction.Create(
        "GcDoubleNullUnsafe",
        (ctx, x) => x * 2,
        (ctx, g) => g * 2,
        new AutogradFunctionOptions { MaterializeGrads = false });

    /// <summary>(a, b) -> (a + b, a * b), materialisation off, Backward handling null gradients properly.</summary>
    internal static readonly MultiFunction SumAndProductNullSafe = TestFunctions.SumAndProduct(
        "GcSumAndProductNullSafe",
        (gs, a, b) =>
        {
            Tensor? ga = null, gb = null;
            if (gs[0] is { } g0)
            {
                ga = g0;
                gb = g0;
            }
            if (gs[1] is { } g1)
            {
                ga = ga is null ? g1 * b : ga + g1 * b;
                gb = gb is null ? g1 * a : gb + g1 * a;
            }
            return new[] { ga, gb };
        },
        new AutogradFunctionOptions { MaterializeGrads = false });

    /// <summary>(a, b) -> (a + b, a * b), materialisation off: copes with all gradients missing, crashes when only one is.</summary>
    internal static readonly MultiFunction SumAndProductHalfNullSafe = TestFunctions.SumAndProduct(
    "GcSumAndProductHalfNullSafe",
    (gs, a, b) => gs[0] is null && gs[1] is null ? new Tensor?[] { null, null } : new[] { gs[0]! + gs[1]! * b, gs[0]! + gs[1]! * a },
    new AutogradFunctionOptions { MaterializeGrads = false });

    /// <summary>Element-wise 2x, materialisation off: a missing gradient gives ones instead of none.</summary>
    internal static readonly UnaryFunction DoubleOnesWhenMissing = AutogradFunction.Create(
        "GcDoubleOnesWhenMissing",
        (ctx, x) =>
        {
            ctx.SaveForBackward(x);
            return x * 2;
        },
        (ctx, g) => g is null ? torch.ones_like(ctx.SavedTensors[0]!) : g * 2,
        new AutogradFunctionOptions { MaterializeGrads = false });

    /// <summary>Element-wise 2x whose Backward adds 1 when the output gradient is all zero.</summary>
    internal static readonly UnaryFunction DoubleNotMultiplied = AutogradFunction.Create(
        "GcDoubleNotMultiplied",
        (ctx, x) => x * 2,
        (ctx, g) => g * 2 + g.eq(0).all().to_type(g.dtype));

    /// <summary>Element-wise 2x whose Backward has relative noise of about 1e-9 (not reentrant).</summary>
    internal static readonly UnaryFunction DoubleNoisy = AutogradFunction.Create(
        "GcDoubleNoisy",
        (ctx, x) => x * 2,
        (ctx, g) => g * 2 * (1 + torch.rand_like(g) * 1e-9));

    /// <summary>Element-wise 2x whose Backward throws.</summary>
    internal static readonly UnaryFunction DoubleThrowing = AutogradFunction.Create(
        "GcDoubleThrowing",
        (ctx, x) => x * 2,
        (ctx, g) => throw new System.InvalidOperationException("planted failure"));

    /// <summary>x^3, once differentiable: differentiating its Backward raises an error.</summary>
    internal static readonly UnaryFunction CubeOnceDifferentiable = TestFunctions.SavingInput(
    "GcCubeOnce", x => x.pow(3), (g, x) => 3 * x * x * g, new AutogradFunctionOptions { OnceDifferentiable = true });

    // ---------------------------------------------------------------- every function form

    /// <summary>a * b + c element-wise, c optional (a three-tensor form).</summary>
    internal static readonly TernaryFunction MulAdd = MulAddWithBiasGradScale("GcMulAdd", 1);

    /// <summary>a * b + c whose Backward gives c twice its gradient (the other two are right).</summary>
    internal static readonly TernaryFunction MulAddWrongBiasGrad = MulAddWithBiasGradScale("GcMulAddWrongBiasGrad", 2);

    private static TernaryFunction MulAddWithBiasGradScale(string name, double biasGradScale) => AutogradFunction.Create(
        name,
        (ctx, a, b, c) =>
        {
            ctx.SaveForBackward(a, b);
            return c is null ? a * b : a * b + c;
        },
        (ctx, g) => ctx.SavedTensors is [{ } a, { } b]
            ? (g * b, g * a, ctx.NeedsInputGrad is [_, _, true] ? g * biasGradScale : null)
            : throw new InvalidOperationException(name + " saves a and b."));

    /// <summary>The element-wise product of the inputs that are not null (an array form).</summary>
    internal static readonly MultiFunction ProductOfPresent = AutogradFunction.CreateMulti(
        "GcProductOfPresent",
        (ctx, xs) =>
        {
            ctx.SaveForBackward(xs);
            return new[] { Product(xs, 1.0) };
        },
        (ctx, gs) => ProductGradients(ctx.SavedTensors, gs, 1.0));

    /// <summary>k x, the factor k a typed argument.</summary>
    internal static readonly UnaryFunction<double> ScaleBy = AutogradFunction.CreateWithArgs<double>(
        "GcScaleBy", (ctx, x, k) => x * k, (ctx, g, k) => g * k);

    /// <summary>k a b element-wise, the factor k a typed argument.</summary>
    internal static readonly BinaryFunction<double> ScaledProduct = AutogradFunction.CreateWithArgs<double>(
        "GcScaledProduct",
        (ctx, a, b, k) =>
        {
            ctx.SaveForBackward(a, b);
            return a * b * k;
        },
        (ctx, g, k) => ctx.SavedTensors is [{ } a, { } b] ? (g * b * k, g * a * k) : throw new InvalidOperationException("saves a and b"));

    /// <summary>k a b + c element-wise, c optional, the factor k a typed argument.</summary>
    internal static readonly TernaryFunction<double> ScaledMulAdd = AutogradFunction.CreateWithArgs<double>(
        "GcScaledMulAdd",
        (ctx, a, b, c, k) =>
        {
            ctx.SaveForBackward(a, b);
            return c is null ? a * b * k : a * b * k + c;
        },
        (ctx, g, k) => ctx.SavedTensors is [{ } a, { } b]
            ? (g * b * k, g * a * k, ctx.NeedsInputGrad is [_, _, true] ? g : null)
            : throw new InvalidOperationException("saves a and b"));

    /// <summary>k times the element-wise product of the inputs that are not null, the factor k a typed argument.</summary>
    internal static readonly MultiFunction<double> ScaledProductOfPresent = AutogradFunction.CreateMultiWithArgs<double>(
        "GcScaledProductOfPresent",
        (ctx, xs, k) =>
        {
            ctx.SaveForBackward(xs);
            return new[] { Product(xs, k) };
        },
        (ctx, gs, k) => ProductGradients(ctx.SavedTensors, gs, k));

    private static Tensor Product(IReadOnlyList<Tensor?> xs, double scale)
    {
        Tensor? product = null;
        foreach (Tensor? x in xs)
        {
            if (x is not null)
                product = product is null ? x * scale : product * x;
        }
        return product ?? throw new ArgumentException("every input is null");
    }

    /// <summary>The gradients of <c>scale * (product of the present inputs)</c>: null for a null input.</summary>
    private static Tensor?[] ProductGradients(IReadOnlyList<Tensor?> saved, IReadOnlyList<Tensor?> grads, double scale)
    {
        if (grads is not [{ } g])
            throw new InvalidOperationException("one output, gradients materialised");
        var result = new Tensor?[saved.Count];
        for (int i = 0; i < saved.Count; i++)
        {
            if (saved[i] is null)
                continue;
            Tensor gi = g * scale;
            for (int j = 0; j < saved.Count; j++)
            {
                if (j != i && saved[j] is { } other)
                    gi = gi * other;
            }
            result[i] = gi;
        }
        return result;
    }

    internal static Tensor Float64(long[] shape, bool requiresGrad = true) =>
        torch.randn(shape, dtype: ScalarType.Float64, requires_grad: requiresGrad);

    internal static Tensor Float64(double[] values) =>
        torch.tensor(values, dtype: ScalarType.Float64).requires_grad_(true);

    internal static Tensor Float64(double[,] values) =>
        torch.tensor(values, dtype: ScalarType.Float64).requires_grad_(true);

    internal static readonly GradCheckOptions NoRaise = new() { RaiseException = false };
}
