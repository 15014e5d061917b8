// SPDX-License-Identifier: MIT
using System;

namespace CustomAutograd;

/// <summary>
/// Options of <see cref="GradCheck"/> and <see cref="GradGradCheck"/>. The defaults and meanings are those of
/// PyTorch's <c>torch.autograd.gradcheck</c> / <c>gradgradcheck</c>; the options that PyTorch lacks
/// (<see cref="ReturnJacobians"/>, <see cref="Seed"/>) change nothing by default.
/// </summary>
public sealed record GradCheckOptions
{
    /// <summary>The defaults: eps 1e-6, atol 1e-5, rtol 1e-3, raise on failure, undefined-gradient check on.</summary>
    public static GradCheckOptions Default { get; } = new();

    /// <summary>
    /// The perturbation of the central finite differences, <c>(f(x + eps) - f(x - eps)) / (2 eps)</c>, applied
    /// to one element at a time (in fast mode, along a random unit direction). PyTorch's <c>eps</c>; default 1e-6.
    /// </summary>
    public double Eps { get; init; } = 1e-6;

    /// <summary>Absolute tolerance: an element passes when <c>|analytical - numerical| &lt;= Atol + Rtol * |numerical|</c>.
    /// PyTorch's <c>atol</c>; default 1e-5.</summary>
    public double Atol { get; init; } = 1e-5;

    /// <summary>Relative tolerance (see <see cref="Atol"/>). PyTorch's <c>rtol</c>; default 1e-3.</summary>
    public double Rtol { get; init; } = 1e-3;

    /// <summary>
    /// True (the default): a failed check throws a <see cref="GradCheckException"/> carrying the
    /// <see cref="GradCheckResult"/>. False: the failed result is returned. PyTorch's <c>raise_exception</c>.
    /// </summary>
    public bool RaiseException { get; init; } = true;

    /// <summary>
    /// Each backward is run twice with the same input and output gradient; the two results may differ by at
    /// most this much (a Backward that is not reentrant fails otherwise). PyTorch's <c>nondet_tol</c>; default 0:
    /// the results must be identical.
    /// </summary>
    public double NondetTol { get; init; }

    /// <summary>
    /// Also checks that backward copes with undefined (missing) output gradients: backward is run with every
    /// output's gradient undefined, then (with several outputs) one output's at a time, and must neither fail nor
    /// produce non-zero input gradients. A custom function with <see cref="AutogradFunctionOptions.MaterializeGrads"/>
    /// off then receives null. PyTorch's <c>check_undefined_grad</c>; default true.
    /// </summary>
    public bool CheckUndefinedGrad { get; init; } = true;

    /// <summary>
    /// Also requires every gradient of the analytical Jacobian to have its input's dtype. PyTorch's
    /// <c>check_grad_dtypes</c>; default false. (The gradients of a backward with zero output gradients are
    /// always required to have their input's dtype, device and shape, as in PyTorch.)
    /// </summary>
    public bool CheckGradDtypes { get; init; }

    /// <summary>
    /// Compares the scalars <c>v^T J u</c> for random unit vectors u (per input) and v (per output) instead of
    /// whole Jacobians: two function evaluations per input and one backward per output, for large inputs.
    /// The absolute tolerance is scaled by <c>sum(u) * sum(v)</c>, as in PyTorch. On a failure the failing
    /// (output, input) pair is re-checked element by element to report the worst element. PyTorch's
    /// <c>fast_mode</c>; default false.
    /// </summary>
    public bool FastMode { get; init; }

    /// <summary>
    /// Returns the whole numerical and analytical Jacobians of every checked (output, input) pair in
    /// <see cref="GradCheckResult.Jacobians"/> (slow mode only). Default false; the failing pair's Jacobians are
    /// included in a failure report anyway when they have at most 16 rows and 16 columns.
    /// </summary>
    public bool ReturnJacobians { get; init; }

    /// <summary>
    /// Seeds the random vectors of <see cref="FastMode"/> and the random output gradients of
    /// <see cref="GradGradCheck"/>; null (the default) draws them from TorchSharp's default generator.
    /// </summary>
    public long? Seed { get; init; }

    /// <summary>
    /// <see cref="GradGradCheck"/> only: the generated random output gradients are non-contiguous (every other
    /// element of a larger tensor). PyTorch's <c>gen_non_contig_grad_outputs</c>; default false.
    /// </summary>
    public bool NonContiguousGradOutputs { get; init; }

    // Throws when an option is out of range.
    internal void Validate()
    {
        if (!(Eps > 0) || double.IsInfinity(Eps))
            throw new ArgumentOutOfRangeException(nameof(Eps), Eps, "Eps must be positive and finite.");
        if (!(Atol >= 0))
            throw new ArgumentOutOfRangeException(nameof(Atol), Atol, "Atol must be non-negative.");
        if (!(Rtol >= 0))
            throw new ArgumentOutOfRangeException(nameof(Rtol), Rtol, "Rtol must be non-negative.");
        if (!(NondetTol >= 0))
            throw new ArgumentOutOfRangeException(nameof(NondetTol), NondetTol, "NondetTol must be non-negative.");
    }
}
